/** What is on disk, as tests look for it: every file under a directory, and whether a text is in any. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Every byte of every file under `dir` (recursively). */
export function filesUnder(dir: string): Buffer[] {
  const out: Buffer[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p)); else out.push(readFileSync(p));
  }
  return out;
}

/** Whether `text` (its UTF-8 bytes) is in any file under `dir`. */
export const foundIn = (dir: string, text: string): boolean => filesUnder(dir).some((b) => b.includes(text));
