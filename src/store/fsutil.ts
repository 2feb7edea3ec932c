/**
 * Small synchronous file-system helpers shared by the store.
 * The store runs on worker threads that own their files, so blocking I/O here is acceptable
 * and keeps ordering obvious (a write is done when the call returns).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * fsync a directory so that a create, rename or unlink inside it survives a power loss.
 * Without this a renamed snapshot or a new journal segment can vanish after a crash even
 * though the file's own data was fsynced.
 */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return; // platforms that cannot open directories (Windows) give no such guarantee anyway
  }
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    // EINVAL/EISDIR: some file systems refuse fsync on directories; nothing more can be done there.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes all of `buf` at the fd's position (O_APPEND fds: at the end), looping over short writes. */
export function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

/** Reads exactly `len` bytes at `pos` unless the file ends first; returns the bytes read. */
export function readAtSync(fd: number, buf: Buffer, len: number, pos: number): number {
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/**
 * Replaces `file` atomically with `data`: temp file in the same directory, write, fsync, rename,
 * fsync the directory. A reader sees the old or the new content, never a mix.
 */
export function writeFileAtomicSync(file: string, data: string | Buffer): void {
  const dir = path.dirname(file);
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    writeAllSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

/** True for ENOENT errors (a file removed under us, e.g. by a concurrent checkpoint). */
export function isNotFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** Zero-padded decimal, so that lexical order of file names is numeric order of lsns. */
export function padLsn(lsn: number): string {
  return String(lsn).padStart(20, '0');
}

/** Files of `dir` whose names match `re` (its first group: a zero-padded number), with that number, ascending. */
export function listNumbered(dir: string, re: RegExp): { n: number; name: string }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  return names
    .map((name) => ({ name, m: re.exec(name) }))
    .filter((x): x is { name: string; m: RegExpExecArray } => x.m !== null)
    .map((x) => ({ n: Number(x.m[1]), name: x.name }))
    .sort((a, b) => a.n - b.n);
}
