/** What start-up checks before anything opens the data directory, and how it fails: exit 2 with one line. */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs } from '../files';

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

