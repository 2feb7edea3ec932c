/** What start-up checks before anything opens the data directory or its store, and how it fails: exit 2 with one line. */
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Settings } from '../config';
import { makeDirs } from '../files';
import type { Logger } from '../log';
import { KEY_FILE } from '../chain/token';
import { isV1DataDir } from '../migrate/v1/read';
import { RESUME_KEY_FILE } from '../net/sessions';
import { STORE_DIR } from '../store/backup';
import { checkStoreOpens } from '../store/lmdb/open-check';

/** Start-up failed for a reason the operator fixes (a port in use, an unusable data directory): exit 2. */
export class StartupError extends Error {
  static fromListen(err: unknown, setting: string, host: string, port: number): Error {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') return new StartupError(`${setting} ${port} on ${host} is already in use`);
    if (code === 'EACCES') return new StartupError(`${setting} ${port} on ${host}: permission denied`);
    if (code === 'EADDRNOTAVAIL') return new StartupError(`${setting}: address ${host} is not available on this machine`);
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** The data directory exists (or can be made) and takes a file: checked before anything opens it. */
export function checkDataDir(dir: string): void {
  try {
    makeDirs(dir);
    const probe = join(dir, `.probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (err) {
    throw new StartupError(`data directory ${dir} is not usable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}


/** Files the service writes into a data directory only after its store was opened there (chain/token.ts, net/sessions.ts). */
const KEYS_AFTER_STORE = [KEY_FILE, RESUME_KEY_FILE];

/** How to get a store back, said in every refusal about one. */
const RESTORE = 'restore it from a backup: start with --data <a backup directory> (README, Backups)';

/** The LMDB data file of a data directory: missing, empty (0 bytes), or there. */
function dataFileState(dataDir: string): 'missing' | 'empty' | 'present' {
  try {
    return statSync(join(dataDir, STORE_DIR, 'data.mdb')).size === 0 ? 'empty' : 'present';
  } catch {
    return 'missing';
  }
}

/**
 * Before the LMDB store is opened (and so created when missing): a directory that holds the keys
 * written after a store was there has lost its store, and a new empty one would serve as if nothing
 * had been acknowledged. That is refused unless `--new-store` says to begin one. A fresh directory
 * (no keys; the status token alone is written before the store on a first start) starts as always,
 * and so does one of the journal version, whose data the migration moves into the store.
 * Then the store is opened once in a child process (store/lmdb/open-check.ts), where LMDB crashing
 * on a damaged file ends only the child.
 */
export async function checkStoreBeforeOpen(s: Pick<Settings, 'data' | 'newStore'>, log: Logger): Promise<void> {
  const envDir = join(s.data, STORE_DIR);
  const state = dataFileState(s.data);
  if (state !== 'present') {
    const keys = KEYS_AFTER_STORE.filter((k) => existsSync(join(s.data, k)));
    if (keys.length === 0 || isV1DataDir(s.data)) return;
    const what = state === 'empty' ? `${envDir}/data.mdb is empty (0 bytes)` : `${envDir}/data.mdb is missing`;
    if (!s.newStore) {
      throw new StartupError(`the store ${envDir} is gone: ${what} while ${s.data} holds this service's keys (${keys.join(', ')}), so acknowledged messages and groups would be lost; ${RESTORE}, or start with --new-store to begin a new, empty store`);
    }
    log.warn({ store: envDir, keys }, `--new-store: ${what}; a new, empty store begins (messages, groups and positions of before are not in it)`);
    return;
  }
  const check = await checkStoreOpens(envDir);
  if (!check.ok) {
    log.debug({ store: envDir, detail: check.detail, ms: check.ms }, 'store check failed');
    throw new StartupError(`the store ${envDir} cannot be used: ${check.found}; ${RESTORE}`);
  }
  log.info({ store: envDir, ms: check.ms, keys: check.walked, complete: check.complete }, 'store opens and reads');
}
