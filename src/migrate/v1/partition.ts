/**
 * One partition's durable state: snapshots + journal in `<data>/p<NN>/`, written by exactly one
 * worker thread.
 *
 * Restore = newest valid snapshot, then every journal record after its lsn, in order. The caller
 * applies them with the same code that applied them live (events are applied in one place).
 *
 * Invariants that make restore possible:
 * - a snapshot at lsn L holds exactly the effects of records 1..L (the caller checkpoints the state
 *   it has after applying everything it appended);
 * - journal segments are kept back to the oldest snapshot still kept, so falling back from a
 *   damaged newest snapshot to the previous one still finds every record after it.
 */
import * as fs from 'node:fs';
import { logger, type Logger } from '../../log';
import { Journal, listSegments, type FsyncPolicy } from './journal';
import { initDataDir, LayoutError, partitionDir, readMeta } from './layout';
import { loadNewestSnapshot, pruneSnapshots, removeSnapshotTemps, writeSnapshot } from './snapshot';

export type { FsyncPolicy };

export interface PartitionOpenOptions {
  /** The data directory (the one holding meta.json); files go to `<dir>/p<NN>/`. */
  dir: string;
  partition: number;
  fsync: FsyncPolicy;
  /** 'grouped' only: window of one group fdatasync, default 2 ms. */
  groupWindowMs?: number;
  /** 'grouped' only: unsynced records that trigger the fdatasync at once, default 512. */
  groupMaxRecords?: number;
  /**
   * Expected partition count. When given, a data dir without meta.json is initialised with it and
   * one with another count is refused. When omitted, meta.json must already exist (initDataDir).
   */
  partitions?: number;
  /** Snapshots kept (the newest and its fallbacks), default 2, at least 1. */
  keepSnapshots?: number;
}

export interface PartitionStats {
  partition: number;
  /** lsn of the last record appended. */
  lsn: number;
  /** lsn up to which records are durable per the fsync policy. */
  durableLsn: number;
  journalBytes: number;
  journalSegments: number;
  lastCheckpointLsn: number;
  /** ms since the epoch of the last snapshot written (or restored from); null when none. */
  lastCheckpointAt: number | null;
  /** Size of the newest snapshot file (0 without one). */
  snapshotBytes: number;
  /**
   * Records appended since the newest checkpoint *asked for* (not since the last one written), so
   * a trigger like `recordsSinceCheckpoint >= N` fires once per N records even while the snapshot
   * is still being written.
   */
  recordsSinceCheckpoint: number;
  /** A snapshot is being written. */
  checkpointing: boolean;
}

export interface PartitionRestore {
  store: PartitionStore;
  /** State of the newest valid snapshot, null when the partition has none. */
  snapshot: unknown | null;
  /** lsn the snapshot covers (0 without a snapshot). */
  snapshotLsn: number;
  /** Journal records after the snapshot, oldest first: records[i] has lsn snapshotLsn + 1 + i. */
  records: unknown[];
}

/** The files cannot give back a consistent state (e.g. journal records missing after the snapshot). */
export class StoreCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreCorruptError';
  }
}

export class PartitionStore {
  readonly partition: number;
  readonly path: string;
  private readonly journal: Journal;
  private readonly keep: number;
  private readonly log: Logger;
  private lastCheckpointLsn: number;
  private lastCheckpointAt: number | null;
  private snapshotBytes = 0;
  /** lsn of the newest checkpoint asked for (written or not): what recordsSinceCheckpoint counts from. */
  private requestedLsn: number;
  /** Checkpoints are written one at a time; `chain` settles when the last one asked for is done. */
  private chain: Promise<void> = Promise.resolve();
  private writing = false;
  /**
   * A checkpoint asked for while another is being written. A newer request replaces its state
   * (the newer snapshot makes the older one pointless), so requests never pile up.
   */
  private queued: { lsn: number; json: string; done: Promise<void> } | undefined;
  private closed = false;

  private constructor(partition: number, dir: string, journal: Journal, keep: number, ckptLsn: number, ckptAt: number | null, log: Logger) {
    this.partition = partition;
    this.path = dir;
    this.journal = journal;
    this.keep = keep;
    this.lastCheckpointLsn = ckptLsn;
    this.requestedLsn = ckptLsn;
    this.lastCheckpointAt = ckptAt;
    this.log = log;
  }

  static async open(opts: PartitionOpenOptions): Promise<PartitionRestore> {
    const log = logger({ component: 'store', partition: opts.partition });
    const meta = opts.partitions !== undefined ? initDataDir(opts.dir, opts.partitions) : readMeta(opts.dir);
    if (meta === null) throw new LayoutError(`data dir ${opts.dir} is not initialised (no meta.json): call initDataDir(dir, partitions) first`);
    if (!Number.isInteger(opts.partition) || opts.partition < 0 || opts.partition >= meta.partitions) {
      throw new LayoutError(`partition ${opts.partition} does not exist in ${opts.dir} (${meta.partitions} partitions)`);
    }
    const dir = partitionDir(opts.dir, opts.partition);
    fs.mkdirSync(dir, { recursive: true });
    removeSnapshotTemps(dir);

    const snap = loadNewestSnapshot(dir, log);
    const base = snap?.lsn ?? 0;
    const segs = listSegments(dir);
    if (segs.length > 0 && segs[0]!.firstLsn > base + 1) {
      throw new StoreCorruptError(
        `partition ${opts.partition}: journal starts at lsn ${segs[0]!.firstLsn} but the newest usable snapshot covers only up to ${base}` +
          (snap === null ? ' (no usable snapshot)' : '') + `; records ${base + 1}..${segs[0]!.firstLsn - 1} are missing`,
      );
    }
    const { journal, records } = Journal.open({
      dir,
      fsync: opts.fsync,
      groupWindowMs: opts.groupWindowMs,
      groupMaxRecords: opts.groupMaxRecords,
      afterLsn: base,
      log,
    });
    if (journal.lsn < base) {
      // Only possible when the journal's unsynced tail was lost (fsync 'off' and a power loss) while
      // the snapshot survived: the snapshot is the truth; new records are numbered after it.
      log.warn({ journalLsn: journal.lsn, snapshotLsn: base }, 'journal ends before the snapshot; continuing after the snapshot');
      journal.skipTo(base);
    }
    log.debug({ snapshotLsn: base, records: records.length, lsn: journal.lsn }, 'partition restored');
    const store = new PartitionStore(opts.partition, dir, journal, Math.max(1, opts.keepSnapshots ?? 2), base, snap?.createdAt ?? null, log);
    if (snap) store.snapshotBytes = fs.statSync(snap.file).size;
    return { store, snapshot: snap === null ? null : snap.state, snapshotLsn: base, records: records.map((r) => r.data) };
  }

  /** lsn of the last record appended. */
  get lsn(): number {
    return this.journal.lsn;
  }

  /**
   * Writes `records` to the journal (synchronously, in one write) and returns the lsn of the last
   * one. Not yet durable under 'grouped': await flush() before releasing anything that depends on them.
   */
  append(records: readonly unknown[]): number {
    return this.journal.appendSync(records);
  }

  /** Resolves when every record appended so far is durable per the fsync policy. */
  flush(): Promise<void> {
    return this.journal.flush();
  }

  /**
   * Snapshots `state`, which must be the partition's state after applying every record appended so
   * far (lsn = this.lsn). The state is serialised and the journal rotated before this returns its
   * promise, so the caller may keep appending and mutating right away. Resolves when the snapshot
   * is durable and the files it made redundant are deleted.
   */
  async checkpoint(state: unknown): Promise<void> {
    if (this.closed) throw new Error(`partition ${this.partition} is closed`);
    const json = JSON.stringify(state);
    if (json === undefined) throw new TypeError('checkpoint state is not JSON data');
    const lsn = this.journal.lsn;
    this.journal.rotate();
    this.requestedLsn = lsn;
    if (this.queued !== undefined) {
      this.queued.lsn = lsn;
      this.queued.json = json;
      return this.queued.done;
    }
    if (!this.writing) return this.track(this.writeCheckpoint(lsn, json));
    const q = { lsn, json, done: Promise.resolve() };
    q.done = this.chain.then(() => {
      this.queued = undefined;
      return this.writeCheckpoint(q.lsn, q.json);
    });
    this.queued = q;
    return this.track(q.done);
  }

  /** True while a snapshot is being written. */
  get checkpointing(): boolean {
    return this.writing;
  }

  private track(run: Promise<void>): Promise<void> {
    this.chain = run.catch(() => undefined);
    return run;
  }

  stats(): PartitionStats {
    return {
      partition: this.partition,
      lsn: this.journal.lsn,
      durableLsn: this.journal.durableLsn,
      journalBytes: this.journal.bytes,
      snapshotBytes: this.snapshotBytes,
      journalSegments: this.journal.segmentFirstLsns().length,
      lastCheckpointLsn: this.lastCheckpointLsn,
      lastCheckpointAt: this.lastCheckpointAt,
      recordsSinceCheckpoint: this.journal.lsn - this.requestedLsn,
      checkpointing: this.writing,
    };
  }

  /** Waits for pending checkpoints, makes the journal durable and closes it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    await this.journal.close();
  }

  private async writeCheckpoint(lsn: number, json: string): Promise<void> {
    this.writing = true;
    try {
      await this.writeSnapshotAndPrune(lsn, json);
    } catch (e) {
      // Let the trigger (recordsSinceCheckpoint) ask again.
      if (this.requestedLsn === lsn) this.requestedLsn = this.lastCheckpointLsn;
      throw e;
    } finally {
      this.writing = false;
    }
  }

  private async writeSnapshotAndPrune(lsn: number, json: string): Promise<void> {
    const started = Date.now();
    const { bytes } = await writeSnapshot(this.path, lsn, json);
    this.lastCheckpointLsn = lsn;
    this.lastCheckpointAt = Date.now();
    this.snapshotBytes = bytes;
    // Only now that the new snapshot is durable may older files go.
    // Until `keep` snapshots exist, the empty state at lsn 0 counts as the oldest one: the first
    // snapshot must have a fallback too, so the journal is kept from lsn 1 until then.
    const kept = pruneSnapshots(this.path, this.keep);
    const oldest = kept.length < this.keep ? 0 : Math.min(...kept);
    const dropped = this.journal.dropThrough(oldest);
    this.log.info({ lsn, bytes, ms: Date.now() - started, droppedSegments: dropped }, 'checkpoint written');
  }
}
