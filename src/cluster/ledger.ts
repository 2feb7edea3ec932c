/**
 * The ledger: the cluster's one ordered log (a JetStream stream) of what actors decided. A node
 * publishes each turn's operations as an entry, with a first line saying what it concerns
 * (interest.ts), and receives every entry of every node, in stream order, as it arrives: one it
 * has no part in is skipped on that line, unread; its own it applies from memory; the rest it
 * decodes and applies (replay.ts). A sender's acknowledgement is among the operations, so it leaves
 * only after JetStream stored the entry (with its replicas) and the sender's node applied it.
 *
 * Two kinds of route:
 * - a partition (`ledger.p.<n>`): the group actors and direct conversations of one partition, one owner at a time. The
 *   owner publishes one entry at a time with the subject's last sequence expected, so after
 *   another node claimed the partition (a claim entry on the same subject) the old owner's next
 *   entry is refused by JetStream: a stale owner cannot write (fencing).
 * - a node (`ledger.n.<id>`): what no singleton decides (direct messages, edits, sign-in state);
 *   published without waiting for the previous entry (NATS keeps one connection's order).
 */
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { EndOfTurn } from '../turn';
import type { Engine } from './engine';
import { chunkOps, decodeEntry, encodeChunk, encodeEntry, splitEntry, takeChunk, VOID_AFTER_MS, type Chunk, type Entry, type Op } from './entry';
import { decodeInterest, encodeInterest, interestOf, type Interest, type InterestContext } from './interest';

/** How often the ledger's consumer is checked for progress. */
const WATCHDOG_MS = 2000;
/** Own entry ids remembered as applied or given up (bounded). */
const REMEMBERED = 10_000;

/** JetStream's error for a publish whose expected last sequence is not the subject's last (10071). */
const WRONG_LAST_SEQUENCE = 10071;

export interface LedgerHooks {
  /**
   * Applies one entry (synchronously, in stream order) on this node. `quiet`: an entry of this node
   * whose requesters were already told it failed (its publish timed out, yet JetStream had stored
   * it in time): applied like any other, but it must not answer them again.
   */
  apply(entry: Entry, seq: number, quiet: boolean): void;
  /** An entry stored too late to count (see VOID_AFTER_MS): skipped on every node; its own node refuses its requests. */
  voided(entry: Entry, seq: number): void;
  /** An entry of a partition this node no longer owns was refused: its operations never happened. */
  fenced(partition: number, ops: Op[]): void;
  /** An entry could not be stored (NATS unreachable past the timeout): its operations never happened. */
  failed(ops: Op[], err: unknown): void;
  /** The ledger was trimmed past what this node applied (it was not live when the trim was decided): it cannot go on. */
  trimmedPast(applied: number, next: number): void;
  /** What an entry concerns (interest.ts): stated when publishing, and judged by each reader before decoding. */
  interest: {
    readonly context: InterestContext;
    /** Whether this node has anything to do with an entry (false: it is skipped unread). */
    concerns(i: Interest): boolean;
    /** An entry this node skipped, at `seq`: its records are numbered, stored and delivered elsewhere. */
    passed(i: Interest, seq: number): void;
  };
}

interface PartitionRoute {
  queue: Op[];
  busy: boolean;
  /** The subject's last sequence as this owner knows it (its claim, then each of its entries). */
  last: number;
  /** False once fenced or released: queued work is refused, nothing more is published. */
  owned: boolean;
}

export class Ledger {
  private readonly routes = new Map<number, PartitionRoute>();
  private nodeQueue: Op[] = [];
  private readonly nodeTurn = new EndOfTurn(() => this.publishNodeQueue());
  /** Publishes under way: each settles with its sequence (null: not stored). */
  private readonly outstanding = new Set<Promise<number | null>>();
  private applying: ConsumerMessages | undefined;
  private appliedSeq = 0;
  private readonly waiters: Array<{ seq: number; resolve: () => void }> = [];
  private nextId = 1;
  private watchdog: NodeJS.Timeout | undefined;
  private refollowing = false;
  private stopped = false;
  private checkedAt = -1;
  /** Own entries applied lately (id → sequence), and own entries given up on: a publish that timed out. */
  private readonly appliedOwn = new Map<number, number>();
  private readonly givenUp = new Map<number, number>();
  /**
   * Own entries published and not read back yet (id → entry): applied from here, not decoded again.
   * Bounded by the publishes under way (and REMEMBERED, should the stream lose some).
   */
  private readonly sent = new Map<number, Entry>();
  readonly counters = { published: 0, applied: 0, applyFailed: 0, voided: 0, fenced: 0, failed: 0, bytesOut: 0, refollows: 0, skipped: 0, fromMemory: 0 };

  constructor(private readonly engine: Engine, private readonly nodeId: string, private readonly hooks: LedgerHooks, private readonly log: Logger) {}

  get applied(): number { return this.appliedSeq; }

  /** Applies entries from `after + 1` on, for as long as the node runs. */
  async start(after: number): Promise<void> {
    this.appliedSeq = after;
    await this.follow();
    // The watchdog: a consumer that lost its server (NATS failed over) is made again from where
    // this replica stopped, when the stream has gone further and nothing arrived for a while.
    this.watchdog = setInterval(() => void this.check(), WATCHDOG_MS);
    this.watchdog.unref();
    this.engine.onHealth((h) => { if (h.connected) void this.refollow('NATS reconnected'); });
  }

  /** A fresh ordered consumer from the entry after the last one applied. */
  private async follow(): Promise<void> {
    const consumer = await this.engine.js.consumers.get(this.engine.names.stream, {
      filter_subjects: this.engine.names.ledgerAll,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.appliedSeq + 1,
    });
    const messages = await consumer.consume({ max_messages: 512, expires: 5000, idle_heartbeat: 1000 });
    this.applying = messages;
    void this.applyLoop(messages);
  }

  private async refollow(why: string): Promise<void> {
    if (this.refollowing || this.stopped) return;
    this.refollowing = true;
    try {
      this.counters.refollows++;
      this.log.info({ why, from: this.appliedSeq + 1 }, 'ledger consumer made again');
      this.applying?.stop();
      await this.follow();
    } catch (err) {
      this.log.warn({ err }, 'ledger consumer could not be made again; the watchdog tries later');
    } finally {
      this.refollowing = false;
    }
  }

  private async check(): Promise<void> {
    if (this.stopped || this.refollowing || !this.engine.health().connected) return;
    const progressed = this.appliedSeq !== this.checkedAt;
    this.checkedAt = this.appliedSeq;
    if (progressed) return;
    try {
      if ((await this.engine.lastSeq()) > this.appliedSeq) await this.refollow('no progress while the stream went on');
    } catch (err) {
      this.log.debug({ err }, 'ledger watchdog: stream not readable');
    }
  }

  private async applyLoop(messages: ConsumerMessages): Promise<void> {
    for await (const m of messages) {
      if (messages !== this.applying) break;
      if (m.seq <= this.appliedSeq) continue;
      if (m.seq > this.appliedSeq + 1) {
        this.stopped = true;
        this.hooks.trimmedPast(this.appliedSeq, m.seq);
        break;
      }
      const interest = decodeInterest(splitEntry(m.data).line);
      if (interest !== undefined && !this.hooks.interest.concerns(interest)) {
        this.counters.skipped++;
        this.hooks.interest.passed(interest, m.seq);
        this.advance(m.seq);
        continue;
      }
      const mine = interest !== undefined && interest.node === this.nodeId ? this.sent.get(interest.id) : undefined;
      let entry: Entry;
      if (mine !== undefined) {
        this.sent.delete(interest!.id);
        this.counters.fromMemory++;
        entry = mine;
      } else {
        try {
          entry = decodeEntry(m.data);
        } catch (err) {
          // Not ours (someone published on our subjects): skipped on every node alike.
          this.log.error({ err, seq: m.seq, subject: m.subject }, 'ledger entry unreadable: skipped');
          this.advance(m.seq);
          continue;
        }
      }
      const storedAt = Number(m.timestampNanos / 1_000_000n);
      if (storedAt - entry.at > VOID_AFTER_MS) {
        this.counters.voided++;
        this.log.warn({ seq: m.seq, node: entry.node, lateMs: storedAt - entry.at }, 'ledger entry stored too late: void on every node');
        this.hooks.voided(entry, m.seq);
      } else {
        const own = entry.node === this.nodeId && entry.id !== undefined;
        if (own) this.remember(this.appliedOwn, entry.id!, m.seq);
        try {
          this.hooks.apply(entry, m.seq, own && this.givenUp.has(entry.id!));
          this.counters.applied++;
        } catch (err) {
          // A poison entry (a bug, or a hand-made message on our subjects) fails alike on every
          // replica, since applying is deterministic: each skips the rest of it and goes on, rather
          // than every node of the cluster stopping on it, again at every replay.
          this.counters.applyFailed++;
          this.log.error({ err, seq: m.seq, node: entry.node }, 'ledger entry failed to apply: the rest of it is skipped');
        }
      }
      this.advance(m.seq);
    }
  }

  private advance(seq: number): void {
    this.appliedSeq = seq;
    while (this.waiters.length > 0 && this.waiters[0]!.seq <= seq) this.waiters.shift()!.resolve();
  }

  /** Resolves once this node applied the entry at `seq`. */
  appliedThrough(seq: number): Promise<void> {
    if (seq <= this.appliedSeq) return Promise.resolve();
    return new Promise((resolve) => {
      const i = this.waiters.findIndex((w) => w.seq > seq);
      this.waiters.splice(i < 0 ? this.waiters.length : i, 0, { seq, resolve });
    });
  }

  // ---- writing ----

  /** The node's own operations: published with this turn's others, in order. */
  submit(ops: Op[]): void {
    this.nodeQueue.push(...ops);
    this.nodeTurn.request();
  }

  private publishNodeQueue(): void {
    const queue = this.nodeQueue;
    this.nodeQueue = [];
    for (const chunk of chunkOps(queue)) this.track(this.publish(this.engine.names.node(this.nodeId), chunk, undefined));
  }

  /** Operations of a partition's group actors; refused (fenced) unless this node still owns it. */
  submitPartition(partition: number, ops: Op[]): void {
    const r = this.routes.get(partition);
    if (!r || !r.owned) return this.hooks.fenced(partition, ops);
    r.queue.push(...ops);
    this.pump(partition, r);
  }

  /**
   * Claims `partition` for this node: a claim entry on its subject, unconditional, so whatever the
   * previous owner publishes after it is refused. Resolves with the claim's sequence once this node
   * applied it (and with it everything the previous owner stored before).
   */
  async claim(partition: number): Promise<number> {
    const ack = await this.engine.js.publish(this.engine.names.partition(partition), encodeEntry({ node: this.nodeId, at: Date.now(), ops: [{ t: 'claim', partition, node: this.nodeId }] }));
    this.routes.set(partition, { queue: [], busy: false, last: ack.seq, owned: true });
    await this.appliedThrough(ack.seq);
    return ack.seq;
  }

  /** This node stops writing `partition` (it was fenced, or handed it over); queued work is refused. */
  release(partition: number): void {
    const r = this.routes.get(partition);
    if (!r) return;
    r.owned = false;
    this.routes.delete(partition);
    if (r.queue.length > 0) this.hooks.fenced(partition, r.queue.splice(0));
  }

  owns(partition: number): boolean { return this.routes.get(partition)?.owned === true; }

  /** Resolves once `partition` has nothing queued or in flight (for a hand-over). */
  async drained(partition: number): Promise<void> {
    for (;;) {
      const r = this.routes.get(partition);
      if (!r || (!r.busy && r.queue.length === 0)) return;
      await new Promise((res) => setTimeout(res, 5));
    }
  }

  private pump(partition: number, r: PartitionRoute): void {
    if (r.busy || r.queue.length === 0) return;
    r.busy = true;
    const chunk = takeChunk(r.queue);
    r.queue.splice(0, chunk.ops.length);
    const done = this.publish(this.engine.names.partition(partition), chunk, r.last, partition).then((seq) => {
      r.busy = false;
      if (seq !== null) r.last = seq;
      if (r.owned) this.pump(partition, r);
      return seq;
    });
    this.track(done);
  }

  /** Keeps the newest REMEMBERED ids of a map (bounded). */
  private remember<V>(m: Map<number, V>, id: number, v: V): void {
    m.set(id, v);
    if (m.size > REMEMBERED) m.delete(m.keys().next().value!);
  }

  private async publish(subject: string, chunk: Chunk, expectLast: number | undefined, partition?: number): Promise<number | null> {
    const id = this.nextId++;
    const ops = chunk.ops;
    const at = Date.now();
    const data = encodeChunk(this.nodeId, at, id, chunk, encodeInterest(interestOf(this.nodeId, id, ops, this.hooks.interest.context)));
    // Kept before publishing: the entry may come back from the consumer before the acknowledgement.
    this.remember(this.sent, id, { node: this.nodeId, at, id, ops });
    try {
      const ack = await this.engine.js.publish(subject, data, expectLast === undefined ? undefined : { expect: { lastSubjectSequence: expectLast } });
      this.counters.published++;
      this.counters.bytesOut += data.byteLength;
      return ack.seq;
    } catch (err) {
      // Not stored, or not known to be: if it comes back after all, it is decoded.
      this.sent.delete(id);
      if (partition !== undefined && (err as { code?: unknown }).code === WRONG_LAST_SEQUENCE && expectLast !== 0 && await this.trimmedAway(subject)) {
        // The ledger was trimmed below this owner's last entry of the partition (snapshot-policy.ts):
        // nobody wrote it since, so it is still this node's; written again on an empty subject.
        return this.publish(subject, chunk, 0, partition);
      }
      if (partition !== undefined && (err as { code?: unknown }).code === WRONG_LAST_SEQUENCE) {
        this.counters.fenced++;
        this.log.warn({ partition, expectLast, err: (err as Error).message }, 'partition claimed by another node: this node stops writing it');
        const r = this.routes.get(partition);
        if (r) { r.owned = false; this.routes.delete(partition); }
        this.hooks.fenced(partition, [...ops, ...(r?.queue.splice(0) ?? [])]);
      } else {
        // Stored after all (the acknowledgement was what got lost) and applied here already: a success.
        const seq = this.appliedOwn.get(id);
        if (seq !== undefined) return seq;
        this.counters.failed++;
        this.remember(this.givenUp, id, Date.now());
        this.hooks.failed(ops, err);
      }
      return null;
    }
  }

  /** Whether `subject` holds no entry any more (all trimmed): fencing then expects none. */
  private async trimmedAway(subject: string): Promise<boolean> {
    try {
      return (await this.engine.jsm.streams.getMessage(this.engine.names.stream, { last_by_subj: subject })) === null;
    } catch (err) {
      return /no message found|10037/i.test(String((err as Error).message ?? err)) || (err as { code?: unknown }).code === 10037 || (err as { code?: unknown }).code === '404';
    }
  }

  private track(p: Promise<number | null>): void {
    this.outstanding.add(p);
    void p.finally(() => this.outstanding.delete(p));
  }

  /**
   * Runs `fn` once everything submitted before the call is stored and applied on this node; `lost`
   * instead if some of it could not be stored.
   */
  after(fn: () => void, lost?: () => void): void {
    const pending = [...this.outstanding];
    // Operations still waiting for their turn's publish join the wait through a fresh turn.
    const queued = this.nodeTurn.pending ? new Promise<void>((res) => setImmediate(res)).then(() => [...this.outstanding]) : Promise.resolve([]);
    void queued.then((more) => Promise.all([...pending, ...more])).then(async (seqs) => {
      if (seqs.some((s) => s === null)) return lost?.();
      const top = Math.max(0, ...seqs as number[]);
      await this.appliedThrough(top);
      fn();
    });
  }

  stats(): Record<string, unknown> {
    return { ...this.counters, appliedSeq: this.appliedSeq, outstanding: this.outstanding.size, owned: [...this.routes.keys()].sort((a, b) => a - b) };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.watchdog);
    await Promise.allSettled([...this.outstanding]);
    this.applying?.stop();
  }
}
