/**
 * File-system steps shared by the parts that keep a file of their own in the data directory (the
 * server key, the resume-token key, the status token, the data directory itself).
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p` one level at a time, new levels 0700: Node's recursive mkdir never returns on some
 * paths the kernel refuses oddly (under /proc it spins at 100% CPU).
 */
export function makeDirs(dir: string): void {
  const abs = resolve(dir);
  const parent = dirname(abs);
  if (parent !== abs && !existsSync(parent)) makeDirs(parent);
  try {
    mkdirSync(abs, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * Writes a secret `file` whole or not at all: a new temp file (mode 0600 from its creation, never
 * through an existing file or link), fsync, rename over `file`.
 */
export function writePrivateFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}
