/**
 * When a cluster node writes snapshots and trims the ledger (snapshots.ts does the writing):
 * - a partition's snapshot, by the node serving it: when there is none yet, and then once the
 *   records it stored since the last one reach a quarter of that snapshot (at least
 *   `minRecords`), so each record is written again a bounded number of times (a geometric series:
 *   about four times over its life), and a node taking the partition over replays at most that much
 *   of the ledger after the snapshot; and also when it has any new record and its snapshot lags the
 *   ledger by `sharedEntries` entries, since the oldest snapshot is what holds the ledger's trim back
 *   (a quiet partition must not keep every other partition's entries in the ledger);
 * - the shared snapshot (every state and membership), by the node serving partition 0: when there is
 *   none yet, and then every `sharedEntries` ledger entries;
 * - the ledger, by the same node, after its shared snapshot: trimmed below what every snapshot covers
 *   and what every live node has applied (a node still reading it is never cut off; one that was down
 *   starts from the snapshots). Its size is then bounded by retention and these thresholds, not by
 *   the service's age.
 * One look every `everyMs`; one look at a time.
 */
import type { Logger } from 'pino';
import type { Store } from '../store/ports';
import { partitionObject, SHARED_OBJECT, type Snapshots } from './snapshots';

export interface SnapshotPolicyDeps {
  readonly snapshots: Snapshots;
  readonly store: Store;
  readonly partitions: number;
  /** Partitions this node serves now (complete: filled in). */
  serving(): number[];
  /** Records this node stored of `partition` since it started (stored-partitions.ts). */
  storedOf(partition: number): number;
  /** The ledger sequence this node applied through. */
  applied(): number;
  /** What every live node (this one too) has applied, as their heartbeats say. */
  liveApplied(): number[];
  readonly log: Logger;
}

export interface SnapshotPolicyOptions { everyMs: number; minRecords: number; sharedEntries: number }

interface Last { seq: number; records: number; storedAt: number }

export class SnapshotPolicy {
  private readonly last = new Map<number, Last>();
  private sharedSeq: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private looking = false;
  readonly counters = { partitionSnapshots: 0, sharedSnapshots: 0, records: 0, trims: 0, trimmedEntries: 0, failures: 0 };

  constructor(private readonly deps: SnapshotPolicyDeps, private readonly opts: SnapshotPolicyOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.look(), this.opts.everyMs);
    this.timer.unref();
  }

  stop(): void { clearInterval(this.timer); }

  /** One look: what is due is written, then the ledger trimmed where it can be. */
  async look(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      const listed = await this.deps.snapshots.listed();
      for (const p of this.deps.serving()) await this.partition(p, listed.get(partitionObject(p)));
      if (this.deps.serving().includes(0)) {
        await this.shared(listed.get(SHARED_OBJECT));
        await this.trim();
      }
    } catch (err) {
      this.counters.failures++;
      this.deps.log.warn({ err }, 'snapshots not written this time; tried again at the next look');
    } finally {
      this.looking = false;
    }
  }

  private async partition(p: number, there: number | undefined): Promise<void> {
    const d = this.deps;
    const stored = d.storedOf(p);
    const last = this.last.get(p);
    if (there !== undefined && last !== undefined) {
      const since = stored - last.storedAt;
      const lagging = d.applied() - last.seq >= this.opts.sharedEntries && since > 0;
      if (since < Math.max(this.opts.minRecords, last.records / 4) && !lagging) return;
    } else if (there !== undefined) {
      // Written before (by this node or another): counted from here on.
      this.last.set(p, { seq: there, records: 0, storedAt: stored });
      return;
    }
    const seq = d.applied();
    const w = await d.snapshots.writePartition(p, seq, d.store);
    if (!w) return;
    this.last.set(p, { seq, records: w.count, storedAt: stored });
    this.counters.partitionSnapshots++;
    this.counters.records += w.count;
    d.log.info({ partition: p, seq, records: w.count, bytes: w.bytes }, 'partition snapshot written');
  }

  private async shared(there: number | undefined): Promise<void> {
    const d = this.deps;
    const seq = d.applied();
    const since = Math.max(there ?? 0, this.sharedSeq ?? 0);
    if (there !== undefined && seq - since < this.opts.sharedEntries) return;
    const w = await d.snapshots.writeShared(seq, d.store);
    if (!w) return;
    this.sharedSeq = seq;
    this.counters.sharedSnapshots++;
    d.log.info({ seq, lines: w.count, bytes: w.bytes }, 'shared snapshot written');
  }

  /** Below what every snapshot covers and every live node applied. */
  private async trim(): Promise<void> {
    const covered = await this.deps.snapshots.covered();
    if (covered === undefined) return;
    const below = Math.min(covered, ...this.deps.liveApplied()) + 1;
    const n = await this.deps.snapshots.trimLedger(below);
    if (n > 0) { this.counters.trims++; this.counters.trimmedEntries += n; }
  }
}
