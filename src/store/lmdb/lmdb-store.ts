/**
 * `Store` on LMDB (lmdb-js): one environment at `<dir>/store`. This file composes the backend and
 * holds what belongs to the store as a whole (opening, epoch, flush, backup, stats, health, close);
 * each port it implements has a file of its own, so a change to one port touches one file:
 *
 * - log.ts:       ConversationLog (records, conversation tops, client message ids);
 * - positions.ts: Positions (account offsets and memberships);
 * - states.ts:    ActorStates;
 * - core.ts:      what the three share (databases, turn writer and overlays, guards, probe);
 * - turn-writer.ts, committer.ts: one batch a turn, committed on the writer thread
 *                 (thread-committer.ts, writer-thread.ts) or inline;
 * - schema.ts:    the databases and their key and value formats;
 * - durability.ts: the fsync policies (LmdbFsync) and the 'grouped' sync.
 *
 * Nothing of the data is kept in process memory beyond the queued writes of the current turn and
 * a bounded cache of conversation tops: reads go to the memory-mapped file.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import type { ActorStates, ConversationLog, Positions, Store, StoreHealth, StoreStats } from '../ports';
import { StoreError } from '../ports';
import { closedError, newEpoch } from '../common';
import { InlineCommitter, type Committer } from './committer';
import { Core } from './core';
import { envOptions, GroupedSync, type LmdbFsync } from './durability';
import { seeds, textCodec } from './codecs';
import { toStoreError } from './errors';
import { migrateFormat } from './format';
import { LmdbLog } from './log';
import { LmdbPositions } from './positions';
import { openDbs, type Dbs } from './schema';
import { LmdbStates } from './states';
import { ThreadCommitter } from './thread-committer';

export type { LmdbFsync } from './durability';

export interface LmdbOpenOptions {
  dir: string;
  fsync: LmdbFsync;
  /** Conversation tops kept in memory for `append` and `top` (default TOP_CACHE; 0: none). */
  topCache?: number;
  /** Where commits run: the store's writer thread (default) or the calling thread. */
  writer?: LmdbWriter;
}

export type LmdbWriter = 'thread' | 'inline';

/** Default size of the top cache: the conversations active at once on a busy node. */
const TOP_CACHE = 10_000;

/**
 * The environment's epoch, made and kept at its first open. A damaged one is not made anew (that
 * would tell every client its offsets mean nothing while the records are there): the open fails.
 */
function epochOf(root: RootDatabase, dbs: Dbs, envDir: string): string {
  const raw = dbs.meta.get('epoch');
  if (raw !== undefined) {
    const epoch = textCodec.decode(raw, seeds.meta('epoch'));
    if (epoch === undefined) throw new StoreError(`the store ${envDir} is damaged: its epoch (in meta) fails its checksum; restore it from a backup (docs/operations.md)`, 'damaged');
    return epoch;
  }
  const made = newEpoch();
  root.transactionSync(() => dbs.meta.putSync('epoch', textCodec.encode(made, seeds.meta('epoch'))));
  return made;
}

export class LmdbStore implements Store {
  readonly epoch: string;
  readonly log: ConversationLog;
  readonly positions: Positions;
  readonly states: ActorStates;
  private readonly core: Core;
  /** Set under 'grouped' only (see durability.ts). */
  private readonly groupSync: GroupedSync | undefined;
  /** Backups (environment copies) under way: close waits for them. */
  private readonly copies = new Set<Promise<unknown>>();

  private readonly committer: Committer;
  /** The writer's `localCommits` covered by a finished sync (see flush). */
  private localSynced = 0;

  private constructor(private readonly envDir: string, private readonly fsync: LmdbFsync, root: RootDatabase, dbs: Dbs, topCache: number, writer: LmdbWriter) {
    this.committer = writer === 'thread' ? new ThreadCommitter(envDir, fsync) : new InlineCommitter(root, dbs);
    this.core = new Core(root, dbs, this.committer, (synced) => { if (!synced) this.groupSync?.afterCommit(); }, topCache, envDir);
    this.epoch = epochOf(root, dbs, envDir);
    this.log = new LmdbLog(this.core);
    this.positions = new LmdbPositions(this.core);
    this.states = new LmdbStates(this.core);
    if (fsync === 'grouped') this.groupSync = new GroupedSync(root, () => this.core.closed);
  }

  /** Opens (creating if needed) the environment at `<dir>/store`. */
  static open(opts: LmdbOpenOptions): LmdbStore {
    const envDir = path.join(opts.dir, 'store');
    try {
      mkdirSync(envDir, { recursive: true });
      const root = open(envOptions(envDir, opts.fsync));
      const dbs = openDbs(root);
      migrateFormat(root, dbs, envDir);
      return new LmdbStore(envDir, opts.fsync, root, dbs, opts.topCache ?? TOP_CACHE, opts.writer ?? 'thread');
    } catch (e) {
      throw toStoreError(e, `open ${envDir}`);
    }
  }

  /**
   * Resolves once everything written before the call is durable. Waits for the turn's batch (it
   * does not hand it over early: all flushes of a turn share it); the writer thread syncs each
   * batch itself, so under 'grouped' a flush syncs only if this thread committed something since
   * the last sync (a trim) or the store commits inline ('always' syncs in every commit, 'off' never).
   */
  flush(): Promise<void> {
    if (this.core.closed) return Promise.reject(closedError());
    const { writer } = this.core;
    const committed = writer.whenCommitted();
    const groupSync = this.groupSync;
    if (groupSync === undefined) return committed;
    const local = writer.localCommits;
    if (this.committer.syncs && local === this.localSynced) return committed;
    return committed.then(() => groupSync.request()).then(() => {
      if (local > this.localSynced) this.localSynced = local;
    }).catch((e: unknown) => { throw toStoreError(e, 'flush'); });
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
    const copy = this.core.root.backup(target, true);
    this.copies.add(copy);
    try {
      await copy;
    } catch (e) {
      throw toStoreError(e, 'backup');
    } finally {
      this.copies.delete(copy);
    }
  }

  health(): StoreHealth { return this.core.health.snapshot(); }

  /** Tests only: the writer thread dies as on an uncaught error (false: the store commits inline). */
  crashWriterForTest(): boolean {
    if (!(this.committer instanceof ThreadCommitter)) return false;
    this.committer.crashForTest();
    return true;
  }

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
      damaged: this.core.damage.count,
      damagedLast: this.core.damage.last,
      fsync: this.fsync,
      entries: this.entryCounts(),
      mapSize: env.mapSize ?? 0,
      commits: this.core.writer.commits,
      writer: this.committer instanceof ThreadCommitter ? 'thread' : 'inline',
      writerThreads: this.committer instanceof ThreadCommitter ? this.committer.started : 0,
      writerStalls: this.core.writer.stalls,
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
    await this.groupSync?.stop();
    await this.committer.close();
    // A copy runs on a thread of LMDB's own: the environment must outlive it (closing under it
    // crashes the process). A shutdown deadline still bounds the wait (src/main.ts).
    await Promise.allSettled([...this.copies]);
    await this.core.root.close();
    if (failure !== undefined) throw failure;
  }
}

/** Compile-time check that the class keeps implementing the port. */
const _check: { open(opts: LmdbOpenOptions): Store } = LmdbStore;
void _check;
