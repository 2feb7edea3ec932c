/**
 * What the port implementations (the log, positions and states) share: the databases, the
 * turn's writer with its overlays, the offset counter, the cache of conversation tops, the health,
 * and the guard every call passes. One object, so the three ports see one turn's writes alike.
 *
 * Writes go into one batch per event-loop turn, committed by the writer thread (turn-writer.ts).
 * Point reads (`top`, `findMid`, `positions.get`, `membership`, `states.get`) and `append` do not
 * wait for it: they see the writes not yet committed in the overlays (overlay.ts) and otherwise the
 * committed data, so the delivery actor's reads between its appends cost no transaction. Range
 * reads (`read`, `conversations`, `memberships`, `states.list`, `backup`) wait for everything
 * written before them to commit, and `trimThrough` runs in a transaction of its own after that.
 * This process must be the only writer of the environment (the offset counter and the top cache
 * assume it).
 */
import type { RootDatabase } from 'lmdb';
import { LRUCache } from 'lru-cache';
import type { ConvId, ConvTop } from '../ports';
import { lostForNow, StoreError } from '../ports';
import { closedError } from '../common';
import { numberCodec, positionsCodec, seeds, textCodec, topCodec } from './codecs';
import type { BatchWriter } from './write-batch';
import { Damage } from './damage';
import { toStoreError } from './errors';
import { Health } from './health';
import type { Committer } from './committer';
import { Pending } from './overlay';
import type { Dbs } from './schema';
import { PROBE_BYTES, PROBE_FREE, ensureSpace, freeBytes, fullIfNoSpace } from './space';
import { TurnWriter } from './turn-writer';

export class Core {
  lastOffset: number;
  private savedOffset: number;
  appended = 0;
  trimmed = 0;
  closed = false;
  readonly writer: TurnWriter;
  /** The writes not committed yet by key, for the reads that do not wait for a commit. */
  readonly pending = new Pending();
  /**
   * Tops of recently used conversations as they are with the queued writes (the overlay, looked
   * at first, is what is exact while queued; an entry evicted is read again from the data).
   */
  readonly tops: LRUCache<ConvId, ConvTop> | undefined;
  readonly health = new Health();
  readonly damage = new Damage();

  constructor(readonly root: RootDatabase, readonly dbs: Dbs, committer: Committer, onCommit: (synced: boolean) => void, topCache: number, private readonly envDir: string) {
    this.tops = topCache > 0 ? new LRUCache<ConvId, ConvTop>({ max: topCache }) : undefined;
    this.lastOffset = this.savedOffset = readLastOffset(dbs, this.damage);
    this.writer = new TurnWriter(committer, root, {
      seal: (batch) => this.seal(batch),
      finish: () => this.saveOffset(),
      settled: (committed) => this.afterBatch(committed),
      onCommit,
      failed: (err, lost) => this.commitFailed(err, lost),
      spaceFor: (bytes) => ensureSpace(this.envDir, bytes),
    });
  }

  /**
   * The end of a turn's batch: each key the overlay holds, with its last value, and the counter
   * (in the transaction that holds the records it numbered, so a restart continues after the last
   * committed offset and never hands one out twice). The overlay is then the one under way.
   */
  private seal(batch: BatchWriter): void {
    const o = this.pending.current;
    for (const [conv, top] of o.tops) batch.put('convs', conv, topCodec.encode(top, seeds.convs(conv)));
    for (const [account, p] of o.positions) batch.put('positions', account, positionsCodec.encode(p, seeds.positions(account)));
    for (const { account, conv, since } of o.members.values()) {
      if (since === null) batch.remove('members', [account, conv]);
      else batch.put('members', [account, conv], numberCodec.encode(since, seeds.members(account, conv)));
    }
    for (const [address, text] of o.states) {
      if (text === null) batch.remove('states', address);
      else batch.put('states', address, textCodec.encode(text, seeds.states(address)));
    }
    const counter = this.unsavedOffset();
    if (counter !== undefined) batch.put('meta', 'lastOffset', counter);
    this.pending.seal();
  }

  /** Inside a transaction of this thread (runNow): the counter, as in `seal`. */
  private saveOffset(): void {
    const counter = this.unsavedOffset();
    if (counter !== undefined) this.dbs.meta.putSync('lastOffset', counter);
  }

  /** The offset counter, encoded, if it moved since it was last written (and taken as written now). */
  private unsavedOffset(): Buffer | undefined {
    if (this.lastOffset === this.savedOffset) return undefined;
    this.savedOffset = this.lastOffset;
    return numberCodec.encode(this.lastOffset, seeds.meta('lastOffset'));
  }

  /** After the batch under way committed or was lost. */
  private afterBatch(committed: boolean): void {
    // This thread's LMDB snapshot may predate the commit: the next read takes a new one, before
    // the overlay that stood in for the batch goes.
    this.root.resetReadTxn();
    this.pending.sealed.clear();
    if (committed) return;
    // Lost: so are the turn's writes since (made on top of them), and the cache may hold their tops.
    this.pending.current.clear();
    this.tops?.clear();
  }

  /** A commit failed: a full disk (or map), or a writer thread that died, turns writing off until the probe succeeds. */
  private commitFailed(err: StoreError, lost: number): StoreError {
    // The counter of that transaction was not written: the next commit writes it (offsets never go back).
    this.savedOffset = -1;
    const e = fullIfNoSpace(err, this.envDir);
    if (lostForNow(e)) this.health.lost(e, lost);
    return e;
  }

  /**
   * While not writable: enough space free again and a write of some pages (removed again) commits,
   * then writing is on again. The counter goes into the same transaction.
   */
  probe(): boolean {
    if (this.closed) return false;
    if (this.health.writable) return true;
    if (this.writer.failure !== undefined) return false;
    if (freeBytes(this.envDir) < PROBE_FREE) return false;
    if (!this.probeWrite()) return false;
    this.writer.forgetLoss();
    this.health.restored();
    return true;
  }

  /** The probe's test write, and its removal: true if both committed. */
  private probeWrite(): boolean {
    const { meta } = this.dbs;
    try {
      this.writer.runNow(() => meta.putSync('probe', Buffer.alloc(PROBE_BYTES, 0x30)));
      this.writer.runNow(() => meta.removeSync('probe'));
      return true;
    } catch {
      return false;
    }
  }

  /** Before a write: the store must be open and not failed. */
  writable(): void {
    if (this.closed) throw closedError();
    if (this.writer.failure !== undefined) throw this.writer.failure;
  }

  /**
   * Before a read: commits this process's queued writes, so the read sees them. If they are lost
   * to a full disk the read still answers, from the committed data (reads go on while full).
   */
  readable(): void {
    if (this.closed) throw closedError();
    try {
      this.writer.commitNow();
    } catch (e) {
      if (!lostForNow(e)) throw e;
    }
  }

  /** Runs a read, reporting lmdb-js errors as StoreErrors. */
  read<T>(what: string, fn: () => T): T {
    this.readable();
    return this.peek(what, fn);
  }

  /**
   * Runs a point read without committing: `fn` looks at the overlay first and at the committed
   * data otherwise.
   */
  peek<T>(what: string, fn: () => T): T {
    if (this.closed) throw closedError();
    try {
      return fn();
    } catch (e) {
      const err = toStoreError(e, what);
      // A page LMDB finds corrupt is damage too: counted and logged (once per read kind) here.
      if (err.code === 'corrupt') this.damage.found('pages', what, { err: err.message });
      throw err;
    }
  }
}

/**
 * The offset counter as stored. A damaged one is found again as the highest offset the store
 * knows of (records, conversation tops, account positions), so no offset is handed out twice.
 */
function readLastOffset(dbs: Dbs, damage: Damage): number {
  const raw = dbs.meta.get('lastOffset');
  if (raw === undefined) return 0;
  const n = numberCodec.decode(raw, seeds.meta('lastOffset'));
  if (n !== undefined) return n;
  damage.found('meta', 'lastOffset', { key: 'lastOffset' });
  let max = 0;
  for (const k of dbs.log.getKeys({})) max = Math.max(max, k[1]);
  for (const { key, value } of dbs.positions.getRange({})) {
    const p = positionsCodec.decode(value, seeds.positions(key));
    if (p !== undefined) max = Math.max(max, p.delivered, p.acked);
  }
  return max;
}
