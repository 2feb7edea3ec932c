/**
 * Online backup of a data directory while the server runs and writes.
 *
 * Everything that changes lives in the store (conversation logs, positions, group and verifier
 * state), so one consistent copy of the store is a consistent copy of the service: the store's
 * own backup (for LMDB, a copy made inside one read transaction) sees one instant for all of it.
 * Beside it the directory holds a few files written once (the server key, the legacy-import
 * marker); they are copied with their modes, so the key stays readable by its owner alone.
 *
 * The copy is assembled in `<dest>.partial-…` (mode 0700) and renamed to `dest` at the end: a backup
 * that was interrupted never looks complete. The result is a data dir that starts with `--data DEST`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { logger, type Logger } from '../log';
import { fsyncDir } from './fsutil';
import { openStore } from './open';
import type { Store } from './ports';

export interface BackupResult {
  files: number;
  bytes: number;
}

/** The store's directory inside a data directory; it is copied by the store itself. */
export const STORE_DIR = 'store';

/** Files readable by their owner alone in every copy, whatever their mode in the source. */
const PRIVATE_FILES = new Set(['server-key.seed', 'status-token']);

/**
 * Written into every backup (last, before the rename): what makes a directory recognisable as an IMGC
 * backup, so pruning a backup root never removes anything else. A data directory started from a
 * backup keeps it; a backup of that directory writes its own.
 */
export const BACKUP_MARKER = 'imgc-backup.json';

/**
 * Copies the data dir `src` to the new directory `dest` (which must not exist or be empty). A
 * running server passes its open store; the backup tool, in another process, opens the store
 * beside the server (LMDB allows several processes on one environment).
 */
export async function backupDataDir(src: string, dest: string, opts: { store?: Store; log?: Logger } = {}): Promise<BackupResult> {
  const log = opts.log ?? logger({ component: 'backup' });
  if (!fs.existsSync(path.join(src, STORE_DIR))) throw new Error(`${src} is not an IMGC data dir (no ${STORE_DIR}/)`);
  let destAbs: string;
  let partial: string;
  try {
    destAbs = checkDestination(src, dest);
    partial = `${destAbs}.partial-${randomBytes(4).toString('hex')}`;
    await fs.promises.mkdir(partial, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw plainBackupError(e, dest);
  }
  try {
    let files = 0;
    let bytes = 0;
    for (const name of fs.readdirSync(src)) {
      const from = path.join(src, name);
      const st = fs.lstatSync(from);
      // Only the files written once; directories are the store's (or migrated leftovers).
      if (!st.isFile() || name === BACKUP_MARKER) continue;
      fs.copyFileSync(from, path.join(partial, name));
      fs.chmodSync(path.join(partial, name), PRIVATE_FILES.has(name) ? 0o600 : st.mode & 0o777);
      files++;
      bytes += st.size;
    }
    const store = opts.store ?? await openStore({ backend: 'lmdb', dir: src, fsync: 'grouped' });
    try {
      await store.backup(partial);
    } finally {
      if (!opts.store) await store.close();
    }
    bytes += dirBytes(path.join(partial, STORE_DIR));
    fs.writeFileSync(path.join(partial, BACKUP_MARKER), JSON.stringify({ imgcBackup: 1, createdAt: new Date().toISOString(), createdMs: Date.now(), src: path.resolve(src) }) + '\n', { mode: 0o600 });
    fsyncDir(partial);
    if (fs.existsSync(destAbs)) fs.rmdirSync(destAbs);
    fs.renameSync(partial, destAbs);
    fsyncDir(path.dirname(destAbs));
    log.info({ src, dest: destAbs, files, bytes }, 'backup written');
    return { files: files + 1, bytes };
  } catch (e) {
    await fs.promises.rm(partial, { recursive: true, force: true });
    throw plainBackupError(e, dest);
  }
}

/**
 * A destination the operator has to change: 'not-empty' for one that holds files (HTTP 409), 'invalid'
 * for the rest (400). The message is plain: what is wrong with the path, never an errno line.
 */
export class BackupRefused extends Error {
  constructor(message: string, readonly reason: 'invalid' | 'not-empty') {
    super(message);
  }
}

/** Kernel file systems: a backup there is meaningless, and walking them can recurse without end. */
const SYSTEM_ROOTS = ['/proc', '/sys', '/dev'];
/** Longest name of one path component, less the `.partial-xxxxxxxx` suffix the copy is assembled under. */
const MAX_NAME = 255 - 17;
const MAX_PATH = 4000;

/** Plain words for what the file system said about a path. */
const ERRNO_WORDS: Record<string, string> = {
  EACCES: 'permission denied', EPERM: 'permission denied', EROFS: 'the file system is read-only',
  ENOTDIR: 'a part of the path is not a directory', ENAMETOOLONG: 'the name is too long', ELOOP: 'too many symbolic links',
  ENOSPC: 'no space left on the device', EDQUOT: 'the disk quota is exceeded', EEXIST: 'it exists already', ENOENT: 'a part of the path does not exist',
};

/** An error of the file system about the destination, as a refusal in plain words (others pass unchanged). */
export function plainBackupError(e: unknown, dest: string): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const words = code !== undefined ? ERRNO_WORDS[code] : undefined;
  return words === undefined ? e : new BackupRefused(`backup destination ${dest}: ${words}`, 'invalid');
}

/**
 * Checked before anything is written, with no recursion that a strange file system could spin: the
 * destination must be outside /proc, /sys and /dev and outside the data dir, both as given and as
 * resolved (realpath of its longest existing prefix, the rest appended), so no symlink leads there; it
 * must not itself be a symlink (the rename at the end would replace the link, not fill its target);
 * when it exists it must be an empty directory; the nearest existing directory must be writable.
 */
function checkDestination(src: string, dest: string): string {
  const destAbs = path.resolve(dest);
  const refuse = (why: string): never => { throw new BackupRefused(`backup destination ${dest}: ${why}`, 'invalid'); };
  if (Buffer.byteLength(destAbs) > MAX_PATH || destAbs.split(path.sep).some((c) => Buffer.byteLength(c) > MAX_NAME)) refuse('the name is too long');
  const rest: string[] = [];
  let existing = destAbs;
  while (!lexists(existing)) {
    rest.unshift(path.basename(existing));
    existing = path.dirname(existing);
  }
  const resolved = path.join(fs.realpathSync(existing), ...rest);
  const under = (p: string, root: string): boolean => p === root || p.startsWith(root + path.sep);
  if (SYSTEM_ROOTS.some((r) => under(destAbs, r) || under(resolved, r))) refuse(`${SYSTEM_ROOTS.join(', ')} cannot hold a backup; give a directory on a disk`);
  if (under(resolved, fs.realpathSync(src))) refuse('must be outside the data dir');
  const st = fs.lstatSync(existing);
  if (rest.length === 0) {
    if (st.isSymbolicLink()) refuse('is a symlink; give the directory itself');
    if (!st.isDirectory()) refuse('is not a directory');
    if (fs.readdirSync(destAbs).length > 0) throw new BackupRefused(`backup destination ${dest} exists and is not empty; give a new or empty directory`, 'not-empty');
  } else if (!fs.statSync(existing).isDirectory()) {
    refuse(`${existing} is not a directory`);
  }
  fs.accessSync(rest.length === 0 ? path.dirname(destAbs) : existing, fs.constants.W_OK);
  return destAbs;
}

function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** When an IMGC backup directory was made (from its marker), or undefined when `dir` is not one. */
function backupTime(dir: string): number | undefined {
  try {
    const st = fs.lstatSync(dir);
    if (!st.isDirectory()) return undefined;
    const marker = path.join(dir, BACKUP_MARKER);
    const mst = fs.lstatSync(marker);
    if (!mst.isFile()) return undefined;
    const m = JSON.parse(fs.readFileSync(marker, 'utf8')) as { imgcBackup?: unknown; createdMs?: unknown };
    if (m.imgcBackup !== 1) return undefined;
    return typeof m.createdMs === 'number' ? m.createdMs : mst.mtimeMs;
  } catch {
    return undefined;
  }
}

/** The IMGC backups (directories with the marker) directly under `root`, newest first. */
export function listBackups(root: string): Array<{ dir: string; at: number }> {
  if (!fs.existsSync(root)) return [];
  const backups: Array<{ dir: string; at: number }> = [];
  for (const name of fs.readdirSync(root)) {
    if (name.includes('.partial-')) continue;
    const dir = path.join(root, name);
    const at = backupTime(dir);
    if (at !== undefined) backups.push({ dir, at });
  }
  return backups.sort((a, b) => b.at - a.at || (a.dir < b.dir ? 1 : -1));
}

/**
 * Removes the IMGC backups (directories with the marker) directly under `root` beyond the newest
 * `keep`; anything else there is left alone, as is `protect` (the running data dir, the backup just made).
 * Returns the removed directories.
 */
export function pruneBackups(root: string, keep: number, opts: { protect?: string[]; log?: Logger } = {}): string[] {
  const log = opts.log ?? logger({ component: 'backup' });
  const protect = new Set((opts.protect ?? []).map((p) => { try { return fs.realpathSync(p); } catch { return path.resolve(p); } }));
  const backups = listBackups(root);
  const removed: string[] = [];
  for (const b of backups.slice(Math.max(0, keep))) {
    if (protect.has(fs.realpathSync(b.dir))) continue;
    fs.rmSync(b.dir, { recursive: true, force: true });
    removed.push(b.dir);
  }
  if (removed.length > 0) log.info({ root, keep, removed }, 'older backups removed');
  return removed;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const name of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, name));
    n += st.isDirectory() ? dirBytes(path.join(dir, name)) : st.size;
  }
  return n;
}
