/**
 * Which conversations' records this node keeps: those of the partitions it has claimed. Every node
 * reads the whole ledger, but a record is stored only by the node whose claim on its conversation's
 * partition (actors/address.ts `convPartition`) is the last one before it in the ledger, so each
 * message is on one node, not on all; the others only write it to their sockets.
 *
 * A claim of this node starts keeping the partition from the claim on, and fills in what came
 * before from the ledger (backfill.ts): from where this node last stopped keeping it (its mark), or
 * from the start. The partition is served only once that is done (`ready`). A claim of another node
 * ends it, and the mark says where. Marks are kept in the replica's states, written in the same
 * transaction as what was applied, so a restarted node fills in only what it never had.
 *
 * A partition that stays with another node for `--cluster-drop-after-ms` (DROP_AFTER_MS) is dropped here (its records removed,
 * a page of conversations at a time, and its mark cleared first, so that a claim later loads it from
 * its snapshot): a node's store then holds about its share of the records, not every partition it
 * ever kept. The wait keeps the copy through a short hand-over and back (a node that missed
 * heartbeats under load), which then fills in only what came meanwhile.
 */
import type { Logger } from 'pino';
import { convPartition } from '../actors/address';
import type { ActorStates, ConvId, Store } from '../store/ports';

const MARKS = 'cluster:marks';
/** How long a partition claimed by another node is kept here before its records are dropped. */
export const DROP_AFTER_MS = 60_000;

/** Per partition: complete through this ledger sequence, or `live` (complete through the replica's applied mark). */
type Marks = Record<string, number | 'live'>;

export interface StoredDeps {
  readonly self: string;
  readonly partitions: number;
  readonly states: ActorStates;
  /** The ledger sequence the replica applied through when it was opened. */
  readonly openedAt: number;
  /** Stores the records of `partition` in the ledger's entries after `after` through `through`. */
  backfill(partition: number, after: number, through: number): Promise<void>;
  /** Removes the records of `partition` (until `stop` says to stop); how many. */
  drop(partition: number, stop: () => boolean): Promise<number>;
  /** DROP_AFTER_MS unless given (`--cluster-drop-after-ms`). */
  readonly dropAfterMs?: number;
  readonly log: Logger;
}

export class StoredPartitions {
  private readonly keeping = new Set<number>();
  private readonly marks: Marks;
  private readonly filling = new Map<number, Promise<void>>();
  /** Records stored per partition since the start (delivery asks `stores` once per record), for the snapshot policy. */
  private readonly counts: number[];
  /** Partitions claimed by another node, waiting to be dropped here. */
  private readonly drops = new Map<number, NodeJS.Timeout>();
  readonly counters = { dropped: 0, droppedRecords: 0 };

  constructor(private readonly deps: StoredDeps) {
    this.counts = new Array<number>(deps.partitions).fill(0);
    const saved = (deps.states.get(MARKS) ?? {}) as Marks;
    // Kept until the last stop: complete through what the replica had applied then.
    this.marks = Object.fromEntries(Object.entries(saved).map(([p, m]) => [p, m === 'live' ? deps.openedAt : m]));
    // Written back at once: a second restart must not count this run's applied entries as kept.
    if (Object.values(saved).includes('live')) deps.states.put(MARKS, { ...this.marks });
  }

  /** Whether this node stores the records of `conv` at this point of the ledger. */
  readonly stores = (conv: ConvId): boolean => {
    const p = convPartition(conv, this.deps.partitions);
    if (!this.keeping.has(p)) return false;
    this.counts[p]!++;
    return true;
  };

  storedOf(partition: number): number { return this.counts[partition] ?? 0; }

  keeps(partition: number): boolean { return this.keeping.has(partition); }

  /** A claim of `partition` by `node`, applied at ledger sequence `seq`. */
  claimed(partition: number, node: string, seq: number): void {
    if (node !== this.deps.self) {
      if (!this.keeping.delete(partition)) return;
      this.deps.log.info({ partition, seq, by: node }, 'partition no longer kept here');
      this.filling.delete(partition);
      // Complete through this claim if it was filled in; otherwise the old mark stands (what was
      // stored meanwhile is stored again next time: an append at an offset it has is a no-op).
      if (this.marks[partition] === 'live') this.mark(partition, seq);
      this.dropLater(partition);
      return;
    }
    clearTimeout(this.drops.get(partition));
    this.drops.delete(partition);
    if (this.keeping.has(partition)) return;
    this.keeping.add(partition);
    const after = this.markOf(partition);
    this.deps.log.info({ partition, seq, after }, 'partition kept here from its claim on');
    const run = (after >= seq ? Promise.resolve() : this.deps.backfill(partition, after, seq)).then(() => {
      // Complete only if still kept (a claim of another node may have come meanwhile).
      if (this.keeping.has(partition) && this.filling.get(partition) === run) this.mark(partition, 'live');
    });
    this.filling.set(partition, run);
    run.catch((err: unknown) => {
      // Not kept after all: the next claim fills in from the old mark through itself, so nothing
      // stored or missed meanwhile is lost.
      this.deps.log.error({ err, partition }, 'partition not filled in from the ledger; it is claimed again');
      if (this.filling.get(partition) === run) { this.filling.delete(partition); this.keeping.delete(partition); }
    });
  }

  /**
   * Fills in `partition` through ledger sequence `through` before this node claims it (a node
   * joining), so the hand-over that follows reads only what came after. Whether there is anything
   * to fill in: see `behind`.
   */
  async prefill(partition: number, through: number): Promise<void> {
    if (this.keeping.has(partition) || !this.behind(partition, through)) return;
    await this.deps.backfill(partition, this.markOf(partition), through);
    if (!this.keeping.has(partition) && this.markOf(partition) < through) this.mark(partition, through);
  }

  /** Drops `partition`'s records once it has stayed with another node for the wait. */
  private dropLater(partition: number): void {
    clearTimeout(this.drops.get(partition));
    const timer = setTimeout(() => {
      this.drops.delete(partition);
      if (this.keeping.has(partition)) return;
      // Cleared before the first record goes: stopped halfway (a crash), the copy is not taken for complete.
      this.mark(partition, 0);
      const stop = (): boolean => this.keeping.has(partition);
      this.deps.drop(partition, stop).then((n) => {
        this.counters.dropped++;
        this.counters.droppedRecords += n;
        this.deps.log.info({ partition, records: n, stopped: stop() }, 'records of a partition kept elsewhere dropped here');
      }, (err: unknown) => this.deps.log.warn({ err, partition }, 'records of a partition kept elsewhere could not be dropped here'));
    }, this.deps.dropAfterMs ?? DROP_AFTER_MS);
    timer.unref();
    this.drops.set(partition, timer);
  }

  /** Whether this node's records of `partition` end before ledger sequence `through`. */
  behind(partition: number, through: number): boolean { return this.markOf(partition) < through; }

  /** Resolves once `partition`'s records before its claim are here; rejects if they could not be read. */
  ready(partition: number): Promise<void> { return this.filling.get(partition) ?? Promise.resolve(); }

  list(): number[] { return [...this.keeping].sort((a, b) => a - b); }

  private markOf(partition: number): number {
    const m = this.marks[partition];
    return typeof m === 'number' ? m : 0;
  }

  private mark(partition: number, m: number | 'live'): void {
    this.marks[partition] = m;
    this.deps.states.put(MARKS, { ...this.marks });
  }
}

/**
 * The conversations of `partition` with records in `store`, a page of the store's conversations at a
 * time (`page` of them, so a page may hold none of the partition's: a caller may yield between pages).
 */
export function* partitionConvs(store: Store, partition: number, partitions: number, page: number): Generator<ConvId[]> {
  for (let after: ConvId | undefined; ;) {
    const convs = store.log.conversations(after, page);
    if (convs.length === 0) return;
    after = convs[convs.length - 1];
    yield convs.filter((conv) => convPartition(conv, partitions) === partition);
  }
}

/**
 * Removes the records of `partition`'s conversations from `store`, those at offsets through `upTo`
 * (all, unless given), a page of conversations at a time, yielding to the event loop between pages
 * (the node goes on serving), until `stop` says so; how many.
 */
export async function dropPartition(store: Store, partition: number, partitions: number, opts: { upTo?: number; stop?: () => boolean } = {}): Promise<number> {
  const upTo = opts.upTo ?? Number.MAX_SAFE_INTEGER - 1;
  let dropped = 0;
  for (const convs of partitionConvs(store, partition, partitions, 200)) {
    if (opts.stop?.() === true) break;
    for (const conv of convs) dropped += store.log.trimThrough(conv, upTo);
    await new Promise((r) => setImmediate(r));
  }
  return dropped;
}
