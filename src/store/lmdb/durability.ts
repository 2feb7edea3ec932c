/**
 * The 'grouped' fsync policy: commits do not fsync (MDB_NOSYNC); one shared `mdb_env_sync` on a
 * worker thread serves each group of flushes (group-sync.ts), and a background timer syncs at most
 * BACKGROUND_SYNC_MS after any commit nobody flushed. Kept apart from the store so the store only
 * asks "is this durable yet", whatever the policy.
 *
 * The policies: 'always' fsyncs inside every commit (one per turn with writes); 'grouped' as above;
 * 'off' never fsyncs. Under all three a killed process loses nothing committed (the pages are in
 * the OS cache). Under 'grouped' and 'off' a power loss can lose the unsynced tail, and, as LMDB
 * documents for NOSYNC, may leave that tail torn; 'always' keeps LMDB's full crash safety.
 */
import type { RootDatabase } from 'lmdb';
import { logger } from '../../log';
import { GroupSync } from './group-sync';

export type LmdbFsync = 'always' | 'grouped' | 'off';

/**
 * 'grouped': longest time a commit nobody flushed stays without fsync. Bounds what a power loss
 * can take (and the window in which LMDB without sync-on-commit is exposed to a torn write).
 */
const BACKGROUND_SYNC_MS = 100;

/**
 * The options every thread opens the environment with (the socket thread in lmdb-store.ts, the
 * writer in writer-thread.ts): the same on both, or lmdb-js would open it twice with different flags.
 * 'always': every commit fsyncs before it returns. 'grouped': commits do not; the writer syncs each
 * batch, flush() and the background timer what this thread commits. 'off': never. (lmdb-js
 * overlapping sync is not used: it still fsyncs inside a synchronous commit.)
 */
export function envOptions(envDir: string, fsync: LmdbFsync): { path: string; maxDbs: number; noSync: boolean; overlappingSync: boolean } {
  return { path: envDir, maxDbs: 8, noSync: fsync !== 'always', overlappingSync: false };
}

/**
 * mdb_env_sync(force) on a libuv thread, so the calling thread goes on: `sync(cb)` exists on the
 * lmdb-js root but is missing from its typings.
 */
export function envSync(root: RootDatabase): (done: (err?: unknown) => void) => void {
  const syncable = root as unknown as { sync(cb: (err?: unknown) => void): void };
  return (done) => syncable.sync(done);
}

export class GroupedSync {
  private readonly group: GroupSync;
  private backgroundSync: NodeJS.Timeout | undefined;

  /** `isClosed`: the store is closed, so a background sync that comes due is skipped. */
  constructor(root: RootDatabase, private readonly isClosed: () => boolean) {
    this.group = new GroupSync(envSync(root));
  }

  /** Resolves once everything committed before the call is synced. */
  request(): Promise<void> { return this.group.request(); }

  /** A commit is fsync'd within BACKGROUND_SYNC_MS even if nobody flushes. */
  afterCommit(): void {
    if (this.backgroundSync !== undefined) return;
    this.backgroundSync = setTimeout(() => {
      this.backgroundSync = undefined;
      if (this.isClosed()) return;
      this.group.request().catch((e: unknown) => {
        logger({ mod: 'lmdb-store' }).error({ err: e }, 'background sync failed');
      });
    }, BACKGROUND_SYNC_MS);
    this.backgroundSync.unref();
  }

  /** Before the environment closes: no timer left, and no sync waiting or running. */
  async stop(): Promise<void> {
    if (this.backgroundSync !== undefined) clearTimeout(this.backgroundSync);
    await this.group.idle();
  }
}
