/**
 * `Store` on LMDB (lmdb-js): one environment at `<dir>/store`, seven named databases (their
 * layout: schema.ts). Each port has a file of its own (log.ts, positions.ts, states.ts); what
 * they share (databases, turn writer and overlay, guards, probe) is in core.ts.
 *
 * Nothing of the data is kept in process memory beyond the queued writes of the current turn and
 * a bounded cache of conversation tops: reads go to the memory-mapped file.
 *
 * Durability (see `flush`): 'always' fsyncs inside every commit (one per turn with writes);
 * 'grouped' commits without fsync (MDB_NOSYNC) and runs one shared `mdb_env_sync` on a worker
 * thread per group of flushes, and at most BACKGROUND_SYNC_MS after any commit; 'off' never fsyncs.
 * Under all three a killed process loses nothing committed (the pages are in the OS cache). Under
 * 'grouped' and 'off' a power loss can lose the unsynced tail, and, as LMDB documents for NOSYNC,
 * may leave that tail torn; 'always' keeps LMDB's full crash safety.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import type { ActorStates, ConversationLog, Positions, Store, StoreHealth, StoreStats } from '../ports';
import { StoreError } from '../ports';
import { closedError, newEpoch } from '../common';
import { logger } from '../../log';
import { Core } from './core';
import { toStoreError } from './errors';
import { GroupSync } from './group-sync';
import { LmdbLog } from './log';
import { LmdbPositions } from './positions';
import { openDbs, type Dbs } from './schema';
import { LmdbStates } from './states';

export type LmdbFsync = 'always' | 'grouped' | 'off';

export interface LmdbOpenOptions {
  dir: string;
  fsync: LmdbFsync;
  /** Conversation tops kept in memory for `append` and `top` (default TOP_CACHE; 0: none). */
  topCache?: number;
}

/** Default size of the top cache: the conversations active at once on a busy node. */
const TOP_CACHE = 10_000;

/**
 * 'grouped': longest time a commit nobody flushed stays without fsync. Bounds what a power loss
 * can take (and the window in which LMDB without sync-on-commit is exposed to a torn write).
 */
const BACKGROUND_SYNC_MS = 100;

/** The environment's epoch, made and kept at its first open. */
function epochOf(root: RootDatabase, dbs: Dbs): string {
  const epoch = dbs.meta.get('epoch');
  if (typeof epoch === 'string') return epoch;
  const made = newEpoch();
  root.transactionSync(() => dbs.meta.putSync('epoch', made));
  return made;
}

export class LmdbStore implements Store {
  readonly epoch: string;
  readonly log: ConversationLog;
  readonly positions: Positions;
  readonly states: ActorStates;
  private readonly core: Core;
  private readonly groupSync: GroupSync | undefined;

  private constructor(private readonly envDir: string, private readonly fsync: LmdbFsync, root: RootDatabase, dbs: Dbs, topCache: number) {
    this.core = new Core(root, dbs, () => this.afterCommit(), topCache, envDir);
    this.epoch = epochOf(root, dbs);
    this.log = new LmdbLog(this.core);
    this.positions = new LmdbPositions(this.core);
    this.states = new LmdbStates(this.core);
    if (fsync === 'grouped') {
      // `sync(cb)` exists on the lmdb-js root (mdb_env_sync(force) on a libuv worker thread, so
      // the event loop goes on) but is missing from its typings.
      const syncable = root as unknown as { sync(cb: (err?: unknown) => void): void };
      this.groupSync = new GroupSync((done) => syncable.sync(done));
    }
  }

  private backgroundSync: NodeJS.Timeout | undefined;

  /** 'grouped': a commit is fsync'd within BACKGROUND_SYNC_MS even if nobody flushes. */
  private afterCommit(): void {
    if (this.groupSync === undefined || this.backgroundSync !== undefined) return;
    this.backgroundSync = setTimeout(() => {
      this.backgroundSync = undefined;
      if (this.core.closed) return;
      this.groupSync!.request().catch((e: unknown) => {
        logger({ mod: 'lmdb-store' }).error({ err: e }, 'background sync failed');
      });
    }, BACKGROUND_SYNC_MS);
    this.backgroundSync.unref();
  }

  /** Opens (creating if needed) the environment at `<dir>/store`. */
  static open(opts: LmdbOpenOptions): LmdbStore {
    const envDir = path.join(opts.dir, 'store');
    try {
      mkdirSync(envDir, { recursive: true });
      const root = open({
        path: envDir,
        maxDbs: 8,
        // 'always': every commit fsyncs before it returns. 'grouped': commits do not, flush()
        // and the background timer sync. 'off': never. (lmdb-js overlapping sync is not used: it
        // still fsyncs inside a synchronous commit, on the event loop.)
        noSync: opts.fsync !== 'always',
        overlappingSync: false,
      });
      return new LmdbStore(envDir, opts.fsync, root, openDbs(root), opts.topCache ?? TOP_CACHE);
    } catch (e) {
      throw toStoreError(e, `open ${envDir}`);
    }
  }

  /**
   * Resolves once everything written before the call is durable. Waits for the turn's one commit
   * (it does not commit early: all flushes of a turn share that commit); then 'always' is on disk
   * (its commits fsync), 'grouped' waits for the next shared fsync, 'off' is done.
   */
  flush(): Promise<void> {
    if (this.core.closed) return Promise.reject(closedError());
    const committed = this.core.writer.whenCommitted();
    const groupSync = this.groupSync;
    if (groupSync === undefined) return committed;
    return committed.then(() => groupSync.request()).catch((e: unknown) => { throw toStoreError(e, 'flush'); });
  }

  /**
   * A compacted copy of the environment (mdb_env_copy, one read transaction, so consistent while
   * writes go on) into `<dest>/store`. Includes everything this process wrote before the call.
   */
  async backup(dest: string): Promise<void> {
    this.core.readable();
    const target = path.join(dest, 'store');
    await mkdir(target, { recursive: true });
    if ((await readdir(target)).length > 0) throw new StoreError(`backup target ${target} is not empty`, 'io');
    try {
      await this.core.root.backup(target, true);
    } catch (e) {
      throw toStoreError(e, 'backup');
    }
  }

  health(): StoreHealth { return this.core.health.snapshot(); }

  onHealth(listener: (h: StoreHealth) => void): void { this.core.health.onChange(listener); }

  probe(): boolean { return this.core.probe(); }

  stats(): StoreStats {
    if (this.core.closed) throw closedError();
    const env = this.core.root.getStats() as { mapSize?: number };
    return {
      backend: 'lmdb',
      epoch: this.epoch,
      lastOffset: this.core.lastOffset,
      appended: this.core.appended,
      trimmed: this.core.trimmed,
      bytes: this.dataBytes(),
      fsync: this.fsync,
      entries: this.entryCounts(),
      mapSize: env.mapSize ?? 0,
      commits: this.core.writer.commits,
      pendingWrites: this.core.writer.pending,
    };
  }

  /** Size of the data file (0 while nothing was committed: it is not there yet). */
  private dataBytes(): number {
    try {
      return statSync(path.join(this.envDir, 'data.mdb')).size;
    } catch {
      return 0;
    }
  }

  /** Records in each database, by name. */
  private entryCounts(): Record<string, number> {
    const entries: Record<string, number> = {};
    for (const [name, db] of Object.entries(this.core.dbs)) {
      entries[name] = (db.getStats() as { entryCount?: number }).entryCount ?? 0;
    }
    return entries;
  }

  /** Commits and syncs what is queued, then closes the environment. Later calls fail with 'closed'. */
  async close(): Promise<void> {
    if (this.core.closed) return;
    let failure: unknown;
    try {
      await this.flush();
    } catch (e) {
      failure = e;
    }
    this.core.closed = true;
    if (this.backgroundSync !== undefined) clearTimeout(this.backgroundSync);
    await this.groupSync?.idle();
    await this.core.root.close();
    if (failure !== undefined) throw failure;
  }
}

/** Compile-time check that the class keeps implementing the port. */
const _check: { open(opts: LmdbOpenOptions): Store } = LmdbStore;
void _check;
