/**
 * Online backup of a data directory while the server runs and appends.
 *
 * Consistency without stopping writers rests on three facts:
 * - journal records are appended whole and never rewritten, so the first N bytes of a segment (N
 *   read at the start) are whole records plus at most one partial record, which the journal reader
 *   cuts off on open like any torn tail;
 * - snapshots are replaced by rename and journal segments deleted only after a newer snapshot is
 *   durable, so files opened at the start stay readable through their fds even if the live server
 *   removes them meanwhile (POSIX unlink semantics);
 * - every partition is captured (files opened, lengths read) before any byte is copied, so all
 *   partitions are cut at nearly the same instant.
 *
 * The copy is assembled in `<dest>.partial-…` and renamed to `dest` at the end: a backup that was
 * interrupted never looks complete. The result is a data dir that starts with `--data DEST`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { logger, type Logger } from '../log';
import { fsyncDir, isNotFound } from './fsutil';
import { COLD_DIR } from './cold';
import { listSegments } from './journal';
import { partitionDir, readMeta } from './layout';
import { listSnapshots, verifySnapshot, SnapshotCorruptError } from './snapshot';

export interface BackupResult {
  files: number;
  bytes: number;
}

interface OpenFile {
  name: string;
  fh: fs.promises.FileHandle;
  /** Bytes to copy: the length when the backup started. */
  length: number;
}

interface PartitionCapture {
  dir: string;
  name: string;
  /** Newest first. */
  snapshots: (OpenFile & { lsn: number })[];
  /** Oldest first. */
  segments: (OpenFile & { firstLsn: number })[];
}

const CHUNK = 1 << 20;

/** Directories of a backup: it holds the server's secret key, so only the owner may enter. */
const DIR_MODE = 0o700;
/** Top-level files that must stay private whatever their mode in the source (chain/token.ts KEY_FILE). */
const PRIVATE_FILES = new Set(['server-key.seed']);

/** Copies the data dir `src` to the new directory `dest` (which must not exist or be empty). */
export async function backupDataDir(src: string, dest: string, log: Logger = logger({ component: 'backup' })): Promise<BackupResult> {
  const meta = readMeta(src);
  if (meta === null) throw new Error(`${src} is not an IMGC data dir (no meta.json)`);
  const destAbs = path.resolve(dest);
  if (destAbs === path.resolve(src) || destAbs.startsWith(path.resolve(src) + path.sep)) {
    throw new Error('backup destination must be outside the data dir');
  }
  if (fs.existsSync(destAbs) && fs.readdirSync(destAbs).length > 0) throw new Error(`backup destination ${dest} exists and is not empty`);
  const parent = path.dirname(destAbs);
  fs.mkdirSync(parent, { recursive: true, mode: DIR_MODE });
  const work = `${destAbs}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  fs.mkdirSync(work, { mode: DIR_MODE });

  const result: BackupResult = { files: 0, bytes: 0 };
  const captures: PartitionCapture[] = [];
  try {
    // 1. Cut: open every file we will need and note its length, before copying anything.
    for (let p = 0; p < meta.partitions; p++) captures.push(await capturePartition(partitionDir(src, p)));

    // 2. Copy partitions from the open files.
    for (const cap of captures) {
      const to = path.join(work, cap.name);
      fs.mkdirSync(to, { mode: DIR_MODE });
      await copyPartition(cap, to, result, log);
      await copyColdActors(cap.dir, to, result);
      fsyncDir(to);
    }

    // 3. Top-level files (meta.json, keys, configuration of other components). Written by their
    // owners with an atomic rename, so a plain copy sees a whole version. Each keeps its permission
    // bits (the key's 0600 above all), and a private file is 0600 even if the source is looser.
    for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
      if (!ent.isFile() || /\.tmp(-|$)/.test(ent.name)) continue;
      const file = path.join(src, ent.name);
      const data = await fs.promises.readFile(file);
      const mode = PRIVATE_FILES.has(ent.name) ? 0o600 : fs.statSync(file).mode & 0o777;
      await writeDurable(path.join(work, ent.name), [data], mode);
      result.files++;
      result.bytes += data.length;
    }
    // 4. Nested data dirs (the inbox actors' journal lives in `accounts/`, written by another thread).
    for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
      if (!ent.isDirectory() || readMeta(path.join(src, ent.name)) === null) continue;
      const nested = await backupDataDir(path.join(src, ent.name), path.join(work, ent.name), log);
      result.files += nested.files;
      result.bytes += nested.bytes;
    }
    fsyncDir(work);
    if (fs.existsSync(destAbs)) fs.rmdirSync(destAbs); // empty, checked above
    fs.renameSync(work, destAbs);
    fsyncDir(parent);
  } catch (e) {
    fs.rmSync(work, { recursive: true, force: true });
    throw e;
  } finally {
    for (const cap of captures) {
      for (const f of [...cap.snapshots, ...cap.segments]) await f.fh.close().catch(() => undefined);
    }
  }
  log.info({ src, dest: destAbs, ...result }, 'backup written');
  return result;
}

/**
 * Opens the snapshots and journal segments of one partition. A file deleted between listing and
 * opening (a checkpoint pruned it) makes the listing stale: close and list again.
 */
async function capturePartition(dir: string): Promise<PartitionCapture> {
  for (let attempt = 0; ; attempt++) {
    const cap: PartitionCapture = { dir, name: path.basename(dir), snapshots: [], segments: [] };
    try {
      for (const s of listSnapshots(dir)) cap.snapshots.push({ ...(await openWithLength(dir, s.name)), lsn: s.lsn });
      for (const s of listSegments(dir)) cap.segments.push({ ...(await openWithLength(dir, s.name)), firstLsn: s.firstLsn });
      return cap;
    } catch (e) {
      for (const f of [...cap.snapshots, ...cap.segments]) await f.fh.close().catch(() => undefined);
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw e;
    }
  }
}

async function openWithLength(dir: string, name: string): Promise<OpenFile> {
  const fh = await fs.promises.open(path.join(dir, name), 'r');
  try {
    return { name, fh, length: (await fh.stat()).size };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Copies the newest valid snapshot and the segments holding records after it. */
async function copyPartition(cap: PartitionCapture, to: string, result: BackupResult, log: Logger): Promise<void> {
  let base = 0;
  for (const s of cap.snapshots) {
    const buf = await readPrefix(s.fh, s.length);
    try {
      verifySnapshot(buf, s.name);
    } catch (e) {
      if (!(e instanceof SnapshotCorruptError)) throw e;
      log.warn({ partition: cap.name, snapshot: s.name, err: e.message }, 'backup: snapshot unusable, taking the previous one');
      continue;
    }
    await writeDurable(path.join(to, s.name), [buf]);
    result.files++;
    result.bytes += buf.length;
    base = s.lsn;
    break;
  }
  const needed = cap.segments.filter((seg, i) => {
    const next = cap.segments[i + 1];
    return next === undefined || next.firstLsn - 1 > base;
  });
  if (needed.length > 0 && needed[0]!.firstLsn > base + 1) {
    throw new Error(`${cap.dir}: journal starts at lsn ${needed[0]!.firstLsn}, after the snapshot at ${base}; the source itself cannot be restored`);
  }
  for (const seg of needed) {
    const bytes = await copyPrefix(seg.fh, seg.length, path.join(to, seg.name));
    result.files++;
    result.bytes += bytes;
  }
}

/** Evicted actors' files: each is replaced whole by rename, so a plain copy sees one version. */
async function copyColdActors(from: string, to: string, result: BackupResult): Promise<void> {
  const dir = path.join(from, COLD_DIR);
  if (!fs.existsSync(dir)) return;
  fs.mkdirSync(path.join(to, COLD_DIR), { mode: DIR_MODE });
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.json')) continue;
    let data: Buffer;
    try {
      data = await fs.promises.readFile(path.join(dir, name));
    } catch (e) {
      if (isNotFound(e)) continue; // brought back to memory and destroyed meanwhile
      throw e;
    }
    await writeDurable(path.join(to, COLD_DIR, name), [data]);
    result.files++;
    result.bytes += data.length;
  }
  fsyncDir(path.join(to, COLD_DIR));
}

async function readPrefix(fh: fs.promises.FileHandle, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/** Copies the first `length` bytes of an open file to a new file, fsynced. */
async function copyPrefix(fh: fs.promises.FileHandle, length: number, file: string): Promise<number> {
  const out = await fs.promises.open(file, 'wx');
  let pos = 0;
  try {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(length, 1)));
    while (pos < length) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - pos), pos);
      if (bytesRead === 0) break;
      await out.write(buf, 0, bytesRead);
      pos += bytesRead;
    }
    await out.sync();
  } finally {
    await out.close();
  }
  return pos;
}

/** Writes a new file, fsynced; `mode` (default 0666) is applied exactly, not through the umask. */
async function writeDurable(file: string, parts: Buffer[], mode?: number): Promise<void> {
  const out = await fs.promises.open(file, 'wx', mode ?? 0o666);
  try {
    if (mode !== undefined) await out.chmod(mode);
    for (const p of parts) await out.write(p);
    await out.sync();
  } finally {
    await out.close();
  }
}
