/**
 * The journal-and-checkpoint persistence of one writer (a shard, or the main thread's inbox host):
 * one PartitionStore per partition it owns. Events recorded while a batch is handled are written together when the batch ends (one
 * write per partition), and the batch's output is released only once they are durable.
 * Checkpoints are taken per partition after `checkpointEvery` records or `checkpointMs` of change.
 */
import type { Persistence, PersistenceConfig } from '../actors/persistence';
import { LRUCache } from 'lru-cache';
import { logger } from '../log';
import { initDataDir, partitionOf } from './layout';
import { PartitionStore, type PartitionStats } from './partition';

type Entry = [string, unknown];

export class StorePersistence implements Persistence {
  private readonly pending = new Map<number, Entry[]>();
  private snapshotOf: (() => Record<string, unknown>) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly log;

  private constructor(
    private readonly cfg: PersistenceConfig,
    private readonly stores: Map<number, PartitionStore>,
    private states: Record<string, unknown> | null,
    private entries: Entry[],
  ) {
    this.log = logger({ shard: cfg.index, part: 'persistence' });
  }

  static async open(cfg: PersistenceConfig): Promise<StorePersistence> {
    initDataDir(cfg.dataDir, cfg.partitions);
    const stores = new Map<number, PartitionStore>();
    let states: Record<string, unknown> | null = null;
    const entries: Entry[] = [];
    for (const p of cfg.partitionsOwned) {
      const r = await PartitionStore.open({ dir: cfg.dataDir, partition: p, fsync: cfg.fsync, partitions: cfg.partitions });
      stores.set(p, r.store);
      if (r.snapshot) states = Object.assign(states ?? {}, r.snapshot as Record<string, unknown>);
      for (const rec of r.records) entries.push(...(rec as Entry[]));
    }
    return new StorePersistence(cfg, stores, states, entries);
  }

  snapshotStates(): Record<string, unknown> | null {
    const s = this.states;
    this.states = null;
    return s;
  }

  restored(): Iterable<Entry> {
    const e = this.entries;
    this.entries = [];
    return e;
  }

  /** An address's partition never changes; hashing it on every event showed in the profile. */
  private readonly partitionCache = new LRUCache<string, number>({ max: 100_000 });

  record(address: string, event: unknown): void {
    let p = this.partitionCache.get(address);
    if (p === undefined) {
      p = partitionOf(address, this.cfg.partitions);
      this.partitionCache.set(address, p);
    }
    let list = this.pending.get(p);
    if (!list) { list = []; this.pending.set(p, list); }
    list.push([address, event]);
  }

  write(): void {
    void this.append(false);
  }

  flush(): Promise<void> {
    return this.append(true);
  }

  private append(wait: boolean): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    const touched: Array<Promise<void>> = [];
    const due: number[] = [];
    for (const [p, list] of this.pending) {
      const store = this.store(p);
      // One journal record per partition per batch: the batch's events for that partition, in order.
      store.append([list]);
      if (wait) touched.push(store.flush());
      if (checkpointDue(store.stats(), this.cfg.checkpointEvery)) due.push(p);
    }
    this.pending.clear();
    if (due.length > 0) this.checkpointPartitions(due);
    return Promise.all(touched).then(() => undefined);
  }

  async checkpoint(states: Record<string, unknown>): Promise<void> {
    const byPartition = this.split(states);
    await Promise.all([...this.stores].map(([p, store]) => store.checkpoint(byPartition.get(p) ?? {})));
  }

  onCheckpointDue(snapshot: () => Record<string, unknown>): void {
    this.snapshotOf = snapshot;
    this.timer = setInterval(() => {
      const changed = [...this.stores].filter(([, s]) => s.stats().recordsSinceCheckpoint > 0).map(([p]) => p);
      if (changed.length > 0) this.checkpointPartitions(changed);
    }, this.cfg.checkpointMs);
    this.timer.unref();
  }

  stats(): unknown {
    return { kind: 'journal', fsync: this.cfg.fsync, partitions: [...this.stores.values()].map((s) => s.stats()) };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.stores.values()].map((s) => s.close()));
  }

  private checkpointPartitions(partitions: number[]): void {
    if (!this.snapshotOf) return;
    const byPartition = this.split(this.snapshotOf());
    for (const p of partitions) {
      this.store(p).checkpoint(byPartition.get(p) ?? {}).catch((err: unknown) => this.log.error({ err, partition: p }, 'checkpoint failed'));
    }
  }

  private split(states: Record<string, unknown>): Map<number, Record<string, unknown>> {
    const out = new Map<number, Record<string, unknown>>();
    for (const [address, state] of Object.entries(states)) {
      const p = partitionOf(address, this.cfg.partitions);
      let part = out.get(p);
      if (!part) { part = {}; out.set(p, part); }
      part[address] = state;
    }
    return out;
  }

  private store(p: number): PartitionStore {
    const s = this.stores.get(p);
    if (!s) throw new Error(`partition ${p} is not owned by shard ${this.cfg.index}`);
    return s;
  }
}

/**
 * A partition is checkpointed after `every` records, but never before its journal has grown to half
 * the size of its last snapshot: the cost of checkpoints then stays proportional to what is written,
 * however much state a partition holds (a million kept messages make a large snapshot).
 */
function checkpointDue(s: PartitionStats, every: number): boolean {
  return s.recordsSinceCheckpoint >= every && s.journalBytes * 2 >= s.snapshotBytes;
}
