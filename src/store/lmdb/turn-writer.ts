/**
 * Batches every write of an event-loop turn into one LMDB write transaction, committed by a
 * `Committer` (committer.ts): by default on the store's writer thread, so the socket thread only
 * encodes.
 *
 * A turn's writes go into one batch (write-batch.ts): log records as they are appended, the rest
 * (tops, positions, memberships, states, the offset counter) once each, with its last value, when
 * the batch is sealed at the end of the turn (setImmediate). One batch commits at a time: the turns
 * that end while it commits add to the next, which leaves as soon as it has committed (it may still
 * be syncing; the writer groups the syncs), so under load batches grow instead of queueing. Point
 * reads see the writes not committed through the overlays (overlay.ts). A range read first waits
 * for everything written before it to commit (`commitNow`), blocking the thread for that commit
 * (never for an fsync), and LMDB readers then see it. Writes that must return something computed
 * from the data (trimming, redaction) run after that, in a transaction of their own on this thread
 * (`runNow`).
 */
import type { RootDatabase } from 'lmdb';
import { logger } from '../../log';
import { lostForNow, type StoreError } from '../ports';
import type { Committer } from './committer';
import { toStoreError } from './errors';
import type { DbName } from './schema';
import { BatchWriter, type BatchKey } from './write-batch';

interface Waiter { resolve: () => void; reject: (e: unknown) => void }

/** A batch handed over: who waits for it, how many writes, whether it has committed yet. */
interface InFlight { waiters: Waiter[]; ops: number; committed: boolean }

/** What the turn writer asks of the store around each batch. */
export interface TurnHooks {
  /**
   * Before a batch is handed over: writes what the overlay holds (each key's last value) and the
   * offset counter into it, and sets the overlay aside as the one under way.
   */
  seal(batch: BatchWriter): void;
  /** Inside a transaction of this thread (runNow): the offset counter goes in with what it numbered. */
  finish(): void;
  /** After the batch under way committed (`true`) or was lost (`false`), before anyone is told. */
  settled(committed: boolean): void;
  /** After every successful commit; `synced`: the committer synced it (else the background sync is due). */
  onCommit(synced: boolean): void;
  /**
   * A commit failed: what lmdb-js threw, mapped, and how many writes were lost; returns the error,
   * possibly reclassified (an I/O error with no space left is 'full'), and reports a loss itself.
   */
  failed(e: StoreError, lost: number): StoreError;
  /** Throws a StoreError 'full' when the file system has not room for about `bytes` more. */
  spaceFor(bytes: number): void;
}

/**
 * Bytes a batch holds at most (about: a record is not split): past it the batch is handed over
 * mid-turn, the socket thread first waiting for the one under way (backpressure). So the memory of
 * writes not yet committed is bounded (two batches and their overlays) whatever one turn writes
 * and however far the writer falls behind.
 */
export const MAX_BATCH_BYTES = 8 * 1024 * 1024;

export class TurnWriter {
  /** The turn's batch, not handed over yet. */
  private readonly batch = new BatchWriter();
  /** Writes were made since the last hand-over (some only in the overlay until sealed). */
  private dirty = false;
  private scheduled = false;
  /** flush() callers waiting for the turn's batch. */
  private waiters: Waiter[] = [];
  /**
   * The batches handed over and not done, oldest first: the newest may be committing while older
   * ones wait for their fsync. Only the newest may not have committed.
   */
  private readonly inflight: InFlight[] = [];
  /** Transactions of this thread (runNow), which the committer does not sync: a flush syncs them. */
  localCommits = 0;
  /** Times the socket thread waited for the writer because the turn's batch was full. */
  stalls = 0;
  /**
   * Set once a commit failed for a reason other than a passing one (corrupt data, an I/O error):
   * its writes were lost, so the store takes no more. A commit lost to a full disk or a dead writer
   * thread loses its writes too, but later writes are tried again (the store reports it itself).
   */
  failure: StoreError | undefined;
  /**
   * Writes were lost (a passing failure) and no flush has been told yet: the next `whenCommitted`
   * rejects with it (once), even if its own turn committed, so that no output waiting for a flush
   * is released for a record that was lost (a failed commit can end before the flush is asked for).
   */
  private unreported: StoreError | undefined;
  /** Failures so far: `commitNow` throws the one that happened while it waited. */
  private failures = 0;
  private lastFailure: StoreError | undefined;
  /** Transactions committed (for stats): about one per turn with writes under load, fewer when batches join. */
  commits = 0;

  constructor(
    private readonly committer: Committer,
    private readonly root: Pick<RootDatabase, 'transactionSync'>,
    private readonly hooks: TurnHooks,
  ) {}

  /** Writes not done yet: in the turn's batch and under way. */
  get pending(): number {
    let n = this.batch.count;
    for (const f of this.inflight) n += f.ops;
    return n;
  }

  /** The newest batch handed over has not committed yet. */
  private get committing(): boolean { return this.inflight.at(-1)?.committed === false; }

  /** Queues a put for the turn's batch (handing a full batch over first). */
  put(db: DbName, key: BatchKey, value: Uint8Array): void {
    this.touch();
    if (this.batch.bytes >= MAX_BATCH_BYTES) this.makeRoom();
    this.batch.put(db, key, value);
  }

  /**
   * The turn's batch is full: it is handed over now, mid-turn, once the one committing has
   * committed (this thread waits for it: a stall). So a turn, or a writer slower than the writes,
   * never makes more than two batches waiting for a commit.
   */
  private makeRoom(): void {
    const before = this.failures;
    if (this.committing) {
      this.stalls++;
      this.committer.wait();
    }
    if (this.failures !== before) throw this.lastFailure!;
    if (this.dirty) this.handOver();
  }

  /**
   * Marks the turn as writing (a write kept in the overlay until the batch is sealed) and makes sure
   * the turn ends with a hand-over. Throws the store's failure, if it has one.
   */
  touch(): void {
    if (this.failure !== undefined) throw this.failure;
    this.dirty = true;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.endOfTurn);
    }
  }

  private readonly endOfTurn = (): void => {
    this.scheduled = false;
    // With a batch still committing, this one leaves once it has (committedNow()).
    if (!this.committing && this.dirty) this.handOver();
  };

  /**
   * Resolves once the writes made so far are committed: after the turn's batch, or the one under
   * way if the turn wrote nothing. Does not hand anything over by itself.
   */
  whenCommitted(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.dirty) return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    const newest = this.inflight.at(-1);
    if (newest !== undefined) return new Promise<void>((resolve, reject) => newest.waiters.push({ resolve, reject }));
    const lost = this.unreported;
    this.unreported = undefined;
    return lost === undefined ? Promise.resolve() : Promise.reject(lost);
  }

  /** Forgets a loss not yet told (writing is on again: later flushes are about later writes). */
  forgetLoss(): void { this.unreported = undefined; }

  /**
   * Returns once every write made so far is committed (readers see it), blocking this thread for
   * the commit under way and then the turn's, never for an fsync; throws what failed meanwhile.
   */
  commitNow(): void {
    const before = this.failures;
    for (;;) {
      if (this.failures !== before) throw this.lastFailure!;
      if (this.committing) this.committer.wait();
      else if (this.dirty) this.handOver();
      else return;
    }
  }

  /** Runs `fn` in a write transaction of this thread, after everything written so far has committed. */
  runNow<T>(fn: () => T): T {
    if (this.failure !== undefined) throw this.failure;
    this.commitNow();
    try {
      this.hooks.spaceFor(4096);
      const result = this.root.transactionSync(() => {
        const r = fn();
        this.hooks.finish();
        return r;
      });
      this.commits++;
      this.localCommits++;
      this.hooks.onCommit(false);
      return result;
    } catch (e) {
      throw this.failedNow(this.hooks.failed(toStoreError(e, 'commit'), 1));
    }
  }

  /** Seals the turn's batch and hands it to the committer (none under way has still to commit). */
  private handOver(): void {
    const f: InFlight = { waiters: this.waiters, ops: 0, committed: false };
    this.waiters = [];
    this.dirty = false;
    this.inflight.push(f);
    let batch: Buffer;
    try {
      this.hooks.seal(this.batch);
      f.ops = this.batch.count;
      this.hooks.spaceFor(this.batch.bytes + 4096);
      batch = this.batch.take();
    } catch (e) {
      this.batch.clear();
      this.completed(f, e);
      return;
    }
    this.committer.commit(batch, { committed: (buffer) => this.committedNow(f, buffer), done: (err) => this.completed(f, err) });
  }

  /** A batch is in the data: its overlay can go (its waiters wait for `completed`). */
  private committedNow(f: InFlight, buffer: ArrayBuffer | undefined): void {
    if (buffer !== undefined) this.batch.recycle(buffer);
    f.committed = true;
    this.commits++;
    this.hooks.settled(true);
    // The turns that ended while it committed: their batch leaves now (this one may still sync).
    if (this.dirty && !this.scheduled) this.handOver();
  }

  /** A batch is done: committed (and synced, if the committer syncs), or lost (`e`). */
  private completed(f: InFlight, e: unknown): void {
    const i = this.inflight.indexOf(f);
    if (i >= 0) this.inflight.splice(i, 1);
    const waiters = f.waiters;
    if (e === undefined) {
      const lost = waiters.length > 0 ? this.unreported : undefined;
      if (waiters.length > 0) this.unreported = undefined;
      for (const w of waiters) if (lost === undefined) w.resolve(); else w.reject(lost);
      this.hooks.onCommit(this.committer.syncs);
      return;
    }
    const lostOps = f.ops;
    const err = this.hooks.failed(toStoreError(e, 'commit'), lostOps + this.batch.count);
    // The turn's writes since were made on top of the lost ones (tops, counts): lost with them.
    const later = this.waiters;
    this.waiters = [];
    this.dirty = false;
    this.batch.clear();
    this.hooks.settled(false);
    this.failedNow(err);
    for (const w of waiters) w.reject(err);
    for (const w of later) w.reject(err);
    // Told now if someone waited for these writes, else to the next flush.
    if (lostForNow(err) && waiters.length + later.length === 0) {
      this.unreported = err;
      this.expire(err);
    }
  }

  /** Records a failure: a passing one is counted, any other stops all writing. */
  private failedNow(err: StoreError): StoreError {
    this.failures++;
    this.lastFailure = err;
    if (!lostForNow(err) && this.failure === undefined) {
      this.failure = err;
      logger({ mod: 'lmdb-store' }).error({ err, code: err.code }, 'store commit failed; the store takes no more writes');
    }
    return err;
  }

  /**
   * A loss nobody waited for is told to the flushes asked for in this turn or at its end (the
   * delivery actor asks for its flush in a setImmediate of the turn that wrote), not to a flush of
   * writes made later, which has nothing to do with it: it expires after two check phases.
   */
  private expire(err: StoreError): void {
    setImmediate(() => setImmediate(() => { if (this.unreported === err) this.unreported = undefined; }));
  }
}
