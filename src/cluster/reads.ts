/**
 * Reads in a partitioned cluster (the delivery actor's `LogReads`): a conversation's log is stored
 * by the owner of its partition (`convPartition`), so a conversation stored here is read here and
 * any other from its owner, over core NATS request/reply on the owner's reads subject
 * (read-answers.ts answers there). Every ask carries the ledger sequence this node had applied,
 * and the owner answers once it applied that far: what was acknowledged to a client before the
 * read is in it.
 *
 * A conversation that moves while it is read is asked for again where it is now, for up to the
 * moved wait (as a group call waits for its owner, routing.ts); then a `history` is answered 45003
 * and a backlog goes on without that part (logged).
 *
 * A sign-in backlog is read in lanes (backlog-lanes.ts): this node's store, and one per node that
 * owns some of the account's other conversations, read in pages; all merged by offset
 * (backlog-merge.ts), with a bounded number of bytes held per backlog.
 */
import type { Logger } from 'pino';
import { convPartition } from '../actors/address';
import type { BacklogRange } from '../actors/backlog';
import { conversationOf } from '../actors/conversation-ref';
import type { HistoryAnswer } from '../actors/history';
import type { BacklogSource, BacklogStart, LogReads } from '../actors/log-reads';
import { Code } from '../protocol/codes';
import type { Request } from '../protocol/frames';
import type { Membership } from '../store/ports';
import { LocalLane, outOfTime, RemoteLane, retryPauses, type LaneHost } from './backlog-lanes';
import { MergedBacklog } from './backlog-merge';
import { maxPayload } from './engine';
import { decodeAnswer, PAGE_BYTES, PAGE_RECORDS, ReadAnswers, type ReadAnswer, type ReadAnswerDeps, type ReadAsk } from './read-answers';
import { MOVED_TEXT, WAIT_OWNER_MS } from './routing';

/** How long an ask waits for its answer (the owner waits up to 3 s for its ledger first). */
export const READ_TIMEOUT_MS = 5000;
/** Bytes of pages one backlog holds at most, over its remote lanes (each holds a page and the next). */
const BACKLOG_BUFFER_BYTES = 4 * 1024 * 1024;
/** A page is never asked smaller than this, however many lanes a backlog has. */
const PAGE_MIN_BYTES = 32 * 1024;
/** Conversations one lane asks for (so an ask stays a small message); more make more lanes. */
const LANE_CONVS = 1000;
/** Room left in a NATS message beside a history page's frames (its other keys: read positions). */
const HISTORY_ROOM = 128 * 1024;

export interface ClusterReadsDeps extends ReadAnswerDeps {
  /** The node serving `partition` now, as this node knows it (undefined: none). */
  ownerOf(partition: number): string | undefined;
  /** The last ledger sequence this node applied. */
  applied(): number;
  /** How long a read looks for a moved conversation's owner (default: routing's WAIT_OWNER_MS). */
  readonly movedWaitMs?: number;
}

export class ClusterReads implements LogReads {
  private readonly answers: ReadAnswers;
  readonly movedWaitMs: number;
  readonly counters = { asked: 0, unanswered: 0, gaveUp: 0 };

  constructor(private readonly deps: ClusterReadsDeps) {
    this.answers = new ReadAnswers(deps);
    this.movedWaitMs = deps.movedWaitMs ?? WAIT_OWNER_MS;
  }

  /** Answers other nodes' reads from now on. */
  start(): void { this.answers.start(); }
  stop(): void { this.answers.stop(); }

  /** Asks answered here (for /status). */
  get answered(): ReadAnswers['counters'] { return this.answers.counters; }

  backlog(range: BacklogRange, memberships: Membership[]): BacklogSource {
    return new ClusterBacklog(this, this.deps, range, memberships).merged;
  }

  history(account: string, r: Request, maxBytes: number): HistoryAnswer | Promise<HistoryAnswer> {
    const ref = conversationOf(account, r);
    const p = ref === undefined ? undefined : convPartition(ref.conv, this.deps.partitions);
    // A request that names no conversation is refused where it is read: here.
    if (p === undefined || this.deps.storesLocally(p)) return this.deps.local().history(account, r, maxBytes);
    return this.historyAway(p, account, r, maxBytes);
  }

  /** Where the log of `partition` is read now: this node, another (by id), or undefined (nobody stores it yet). */
  where(partition: number): string | undefined {
    if (this.deps.storesLocally(partition)) return this.deps.self;
    const owner = this.deps.ownerOf(partition);
    // Owned here but not stored yet (taking it over): wait, as for an owner not known yet.
    return owner === this.deps.self ? undefined : owner;
  }

  /** One ask of `node`; no answer in time (or none at all: the node is gone) reads as moved. */
  async ask(node: string, ask: ReadAsk): Promise<ReadAnswer> {
    this.counters.asked++;
    try {
      const m = await this.deps.nc.request(this.deps.names.reads(node), JSON.stringify(ask), { timeout: READ_TIMEOUT_MS });
      return decodeAnswer(m.data);
    } catch (err) {
      this.counters.unanswered++;
      this.deps.log.debug({ err, node }, 'a read not answered: asked again where it is now');
      return { t: 'moved' };
    }
  }

  private async historyAway(p: number, account: string, r: Request, maxBytes: number): Promise<HistoryAnswer> {
    const seq = this.deps.applied();
    const payload = maxPayload(this.deps.nc);
    const bytes = Math.min(maxBytes, Math.max(payload / 2, payload - HISTORY_ROOM));
    const since = Date.now();
    for (const wait of retryPauses()) {
      const node = this.where(p);
      if (node === this.deps.self) return this.deps.local().history(account, r, maxBytes);
      const a = node === undefined ? undefined : await this.ask(node, { k: 'history', seq, account, r, maxBytes: bytes });
      if (a?.t === 'history') return a.answer;
      if (a?.t === 'failed' || a?.t === 'page') {
        this.deps.log.error({ node, account, error: a.t === 'failed' ? a.error : 'a page' }, 'history not read from its owner');
        return { ok: false, code: Code.INTERNAL, error: 'this conversation could not be read; the operators were told' };
      }
      if (outOfTime(since, wait, this.movedWaitMs)) {
        this.counters.gaveUp++;
        return { ok: false, code: Code.UNAVAILABLE, error: MOVED_TEXT };
      }
      await new Promise((res) => setTimeout(res, wait));
    }
    throw new Error('unreachable');
  }
}

/** One sign-in backlog: its lanes, what they ask, and the merge they feed. */
class ClusterBacklog implements LaneHost {
  readonly merged = new MergedBacklog();
  /** Remote lanes made: the bytes a backlog holds are shared among them. */
  private remote = 0;
  /** The ledger sequence applied when the backlog began: every page is read at least that far. */
  private readonly seq: number;

  constructor(private readonly reads: ClusterReads, private readonly deps: ClusterReadsDeps, private readonly range: BacklogRange, memberships: Membership[]) {
    this.seq = deps.applied();
    for (const [where, start] of this.regroup({ memberships })) this.spawn(where, start);
  }

  get self(): string { return this.deps.self; }
  get movedWaitMs(): number { return this.reads.movedWaitMs; }

  page(node: string, start: BacklogStart): Promise<ReadAnswer> {
    return this.reads.ask(node, { k: 'backlog', seq: this.seq, range: this.range, start, records: PAGE_RECORDS, bytes: this.pageBytes() });
  }

  regroup(start: BacklogStart): Map<string | undefined, BacklogStart> {
    return splitStart(start, (conv) => this.reads.where(convPartition(conv, this.deps.partitions)));
  }

  spawn(where: string | undefined, start: BacklogStart, since?: number): void {
    if (where === this.deps.self) return this.merged.add(new LocalLane(this.deps.local().open(this.range, start)));
    const parts = chunksOf(start, LANE_CONVS);
    this.remote += parts.length;
    for (const part of parts) this.merged.add(new RemoteLane(where, part, this, since));
  }

  gaveUp(start: BacklogStart, why: string): void {
    this.reads.counters.gaveUp++;
    const convs = 'cursors' in start ? start.cursors.length : start.memberships.length;
    this.deps.log.warn({ account: this.range.account, convs, why }, 'part of a backlog could not be read from its owner: the backlog is read again shortly');
    this.merged.fail();
  }

  /** Two pages per remote lane within BACKLOG_BUFFER_BYTES, between PAGE_MIN_BYTES and PAGE_BYTES. */
  private pageBytes(): number {
    return Math.max(PAGE_MIN_BYTES, Math.min(PAGE_BYTES, Math.floor(BACKLOG_BUFFER_BYTES / (2 * Math.max(1, this.remote)))));
  }
}

/** `start` split by the key of each conversation (its order kept within each part). */
function splitStart<K>(start: BacklogStart, key: (conv: string) => K): Map<K, BacklogStart> {
  const out = new Map<K, BacklogStart>();
  if ('cursors' in start) {
    for (const [k, cursors] of groupBy(start.cursors, (c) => key(c.conv))) out.set(k, { cursors });
  } else {
    for (const [k, memberships] of groupBy(start.memberships, (m) => key(m.conv))) out.set(k, { memberships });
  }
  return out;
}

/** `start` in parts of at most `n` conversations. */
function chunksOf(start: BacklogStart, n: number): BacklogStart[] {
  let i = 0;
  return [...splitStart(start, () => Math.floor(i++ / n)).values()];
}

function groupBy<T, K>(xs: readonly T[], key: (x: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = out.get(k);
    if (list) list.push(x); else out.set(k, [x]);
  }
  return out;
}
