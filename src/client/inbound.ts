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

type Frame = NoticeFrame | MessageFrame;

/**
 * A frame as the listeners get it: a message (or a record of encryption) read, the others as they
 * came; undefined for one that is only the machinery of encryption (a commit, a part). Live frames
 * and history's go through here alike.
 */
export async function readFrame(open: (f: MessageFrame) => Promise<Opened>, f: Frame): Promise<Frame | undefined> {
  if (f.type !== 'message' && !isE2E(f.msg)) return f;
  const o = await open(f as MessageFrame);
  return o.kind === 'hidden' ? undefined : { ...f, msg: o.msg, e2e: o.e2e } as MessageFrame;
}

/** What the queue needs of the client. */
export interface InboundHost {
  open(f: MessageFrame): Promise<Opened>;
  /** Hands `n` on to the listeners as `shown` (undefined: nothing to show, it is processed all the same). */
  deliver(n: Frame, shown: Frame | undefined): void;
  /** History page by page (each page read as the listeners would get it). */
  pages(opts: HistoryOptions): AsyncGenerator<HistoryPage>;
  /** The highest `seq` processed when this session signed in: where what it missed begins. */
  sessionStart(): number;
  failed(e: unknown): void;
}

export class Inbound {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly host: InboundHost) {}

  push(n: Frame): void {
    this.chain = this.chain.then(() => this.handle(n)).catch((e: unknown) => this.host.failed(e));
  }

  private async handle(n: Frame): Promise<void> {
    const limited = n.type === 'notice' ? limitedOf(n) : undefined;
    if (limited !== undefined) await this.catchUp(limited);
    this.host.deliver(n, await readFrame((f) => this.host.open(f), n));
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
