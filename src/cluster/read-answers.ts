/**
 * Reads asked of this node by the others (core NATS request/reply on its reads subject): `history`
 * pages and sign-in backlog pages of the conversations whose partitions it stores. It answers
 * only once its ledger has applied at least as far as the asking node had when it asked, so a
 * message acknowledged to a client is in every read after it; and only while it still stores the
 * conversations asked for, else "moved" (the asker looks the owner up again).
 *
 * The wire: an ask is JSON; an answer is `h` + a history frame (sent as it is, not escaped again)
 * or `j` + JSON.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { convPartition } from '../actors/address';
import type { Backlog, BacklogCursor, BacklogItem, BacklogRange } from '../actors/backlog';
import { conversationOf } from '../actors/conversation-ref';
import type { HistoryAnswer } from '../actors/history';
import type { BacklogStart, LocalReads } from '../actors/log-reads';
import { Code } from '../protocol/codes';
import type { Request } from '../protocol/frames';
import { maxPayload } from './engine';
import type { ClusterNames } from './names';

export type ReadAsk =
  | { k: 'history'; seq: number; account: string; r: Request; maxBytes: number }
  | { k: 'backlog'; seq: number; range: BacklogRange; start: BacklogStart; records: number; bytes: number };

export type ReadAnswer =
  | { t: 'history'; answer: HistoryAnswer }
  /** Records of the backlog in offset order, and where its conversations stand after them (none left: done). */
  | { t: 'page'; items: BacklogItem[]; cursors: BacklogCursor[] }
  /** Not stored there (any more, or yet), not applied far enough in time, or no answer: ask where it is now. */
  | { t: 'moved' }
  /** Asking again would not help (logged by the asker). */
  | { t: 'failed'; error: string };

/** Records in one backlog page at most. */
export const PAGE_RECORDS = 256;
/** Bytes of frames in one answer at most (less where NATS takes smaller messages). */
export const PAGE_BYTES = 1024 * 1024;
/** How long an owner behind the asker waits for its ledger before it says so (the asker asks again). */
const APPLY_WAIT_MS = 3000;

export function decodeAnswer(data: Uint8Array): ReadAnswer {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  if (text.startsWith('h')) return { t: 'history', answer: { ok: true, frame: text.slice(1) } };
  if (!text.startsWith('j')) return { t: 'failed', error: 'an answer of another kind' };
  const a = JSON.parse(text.slice(1)) as ReadAnswer | { t: 'page'; items: Array<[number, string]>; cursors: BacklogCursor[] };
  if (a.t !== 'page') return a;
  return { t: 'page', items: (a.items as Array<[number, string]>).map(([offset, frame]) => ({ offset, frame })), cursors: a.cursors };
}

export interface ReadAnswerDeps {
  readonly self: string;
  readonly partitions: number;
  storesLocally(partition: number): boolean;
  /** This node's own reads (its delivery actor's, with read positions). */
  local(): LocalReads;
  appliedThrough(seq: number): Promise<void>;
  readonly nc: NatsConnection;
  readonly names: ClusterNames;
  readonly log: Logger;
}

export class ReadAnswers {
  private sub: Subscription | undefined;
  readonly counters = { asked: 0, moved: 0, failed: 0 };

  constructor(private readonly deps: ReadAnswerDeps) {}

  start(): void {
    this.sub = this.deps.nc.subscribe(this.deps.names.reads(this.deps.self), {
      callback: (err, msg) => {
        if (err) return void this.deps.log.warn({ err }, 'reads subject failed');
        this.answer(msg).catch((e: unknown) => {
          // Asks come from other nodes (trusted, but a bug there must not stop this node).
          this.deps.log.error({ err: e }, 'a read asked by another node failed');
          this.respond(msg, failed('the read failed on its owner'));
        });
      },
    });
  }

  stop(): void { this.sub?.unsubscribe(); }

  private async answer(msg: Msg): Promise<void> {
    this.counters.asked++;
    const ask = msg.json<ReadAsk>();
    const convs = ask.k === 'history' ? [conversationOf(ask.account, ask.r)?.conv ?? ''] : startConvs(ask.start);
    // Checked before the wait (no use waiting for what is elsewhere) and after it (it may have moved meanwhile).
    if (!this.storesAll(convs) || !(await this.applied(ask.seq)) || !this.storesAll(convs)) {
      this.counters.moved++;
      return this.respond(msg, 'j{"t":"moved"}');
    }
    this.respond(msg, ask.k === 'history' ? this.history(ask) : this.page(ask));
  }

  private history(ask: Extract<ReadAsk, { k: 'history' }>): string {
    const a = this.deps.local().history(ask.account, ask.r, ask.maxBytes);
    return a.ok ? `h${a.frame}` : `j${JSON.stringify({ t: 'history', answer: a })}`;
  }

  /** A page of the backlog from `start`: whole records, until PAGE_RECORDS or the bytes asked for. */
  private page(ask: Extract<ReadAsk, { k: 'backlog' }>): string {
    const backlog = this.deps.local().open(ask.range, ask.start);
    const limit = Math.min(ask.bytes, PAGE_BYTES, maxPayload(this.deps.nc) / 2);
    return encodePage(backlog, Math.min(ask.records, PAGE_RECORDS), limit);
  }

  private storesAll(convs: string[]): boolean {
    return convs.every((c) => this.deps.storesLocally(convPartition(c, this.deps.partitions)));
  }

  /** Whether the ledger got to `seq` within APPLY_WAIT_MS. */
  private applied(seq: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((res) => { timer = setTimeout(() => res(false), APPLY_WAIT_MS).unref(); });
    return Promise.race([this.deps.appliedThrough(seq).then(() => true), late]).finally(() => clearTimeout(timer));
  }

  private respond(msg: Msg, answer: string): void {
    if (Buffer.byteLength(answer) > maxPayload(this.deps.nc)) {
      this.counters.failed++;
      answer = answer.startsWith('h')
        ? `j${JSON.stringify({ t: 'history', answer: { ok: false, code: Code.INTERNAL, error: 'this page is too large to pass between servers; ask for fewer messages' } })}`
        : failed('a page too large to pass between servers');
    }
    try { msg.respond(answer); } catch (err) { this.deps.log.debug({ err }, 'a read answer not sent'); }
  }
}

/** The page's items as `[offset, frame]` pairs, and the cursors to read on from. */
function encodePage(backlog: Backlog, records: number, bytes: number): string {
  const parts: string[] = [];
  const items: BacklogItem[] = [];
  let size = 0;
  for (let n = 0; n < records && size < bytes; n++) {
    if (backlog.take(items) === 0) break;
    for (const it of items) {
      const part = JSON.stringify([it.offset, it.frame]);
      parts.push(part);
      size += Buffer.byteLength(part) + 1;
    }
    items.length = 0;
  }
  return `j{"t":"page","items":[${parts.join(',')}],"cursors":${JSON.stringify(backlog.cursors())}}`;
}

function failed(error: string): string {
  return `j${JSON.stringify({ t: 'failed', error })}`;
}

/** The conversations a backlog page reads. */
export function startConvs(start: BacklogStart): string[] {
  return 'cursors' in start ? start.cursors.map((c) => c.conv) : start.memberships.map((m) => m.conv);
}
