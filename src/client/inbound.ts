/**
 * Frames for the listeners when end-to-end encryption is on: each is read (decrypted, or found to
 * be only the machinery of encryption) when its turn comes, one after the other in the order they
 * arrived, since a record can only be read once the group changes before it are applied.
 *
 * A `limited` notice says a busy group's older records were left out of the sign-in backlog. Group
 * changes may be among them (a member added or removed while this device was away), and without
 * them the newer messages cannot be read. So before the notice, and what follows it, is handed on,
 * the records left out are read forwards through history, from where this session began up to the
 * notice. They are not shown (the app pages history for that, as without encryption); reading them
 * applies their changes and keeps their texts, so that history shows them too.
 */
import type { Opened } from './e2e/engine.js';
import { isE2E } from './e2e/envelope.js';
import type { HistoryOptions } from './history.js';
import type { HistoryPage, LimitedNotice, MessageFrame, NoticeFrame } from './types.js';

/** The `limited` notice a notice carries, if any. */
export function limitedOf(n: NoticeFrame): LimitedNotice | undefined {
  const m = n.msg as Partial<LimitedNotice> | null;
  return n.method?.act === 'limited' && m && typeof m === 'object' && m.limited === true ? m as LimitedNotice : undefined;
}

/** What the queue needs of the client. */
export interface InboundHost {
  open(f: MessageFrame): Promise<Opened>;
  /** Hands a frame on to the listeners, read (or not a record of encryption: undefined). */
  deliver(n: NoticeFrame | MessageFrame, opened: Opened | undefined): void;
  /** History page by page (each page read as the listeners would get it). */
  pages(opts: HistoryOptions): AsyncGenerator<HistoryPage>;
  /** The highest `seq` processed when this session signed in: where what it missed begins. */
  sessionStart(): number;
  failed(e: unknown): void;
}

export class Inbound {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly host: InboundHost) {}

  push(n: NoticeFrame | MessageFrame): void {
    this.chain = this.chain.then(() => this.handle(n)).catch((e: unknown) => this.host.failed(e));
  }

  private async handle(n: NoticeFrame | MessageFrame): Promise<void> {
    const limited = n.type === 'notice' ? limitedOf(n) : undefined;
    if (limited !== undefined) await this.catchUp(limited);
    const opened = n.type === 'message' || isE2E(n.msg) ? await this.host.open(n as MessageFrame) : undefined;
    this.host.deliver(n, opened);
  }

  /** Reads the group's records left out of the backlog (pages of 100, forwards, up to the notice). */
  private async catchUp(l: LimitedNotice): Promise<void> {
    try {
      for await (const page of this.host.pages({ group: l.group, after: this.host.sessionStart(), direction: 'forward', limit: 100 })) {
        if (page.last >= l.before - 1) break;
      }
    } catch (e) {
      this.host.failed(e);
    }
  }
}
