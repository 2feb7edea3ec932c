/**
 * Cold storage of evicted actors: an actor that went quiet is written here, one file per actor in
 * its partition's `cold/` folder (atomically: temp file, fsync, rename), and dropped from memory;
 * its next message reads it back. Actor events are idempotent, so a cold file a little newer than
 * the journal replayed over it gives the same state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync, isNotFound } from './fsutil';
import { partitionDir, partitionOf } from './layout';

export const COLD_DIR = 'cold';

export class ColdStore {
  constructor(private readonly dataDir: string, private readonly partitions: number) {}

  private file(address: string): string {
    const p = partitionOf(address, this.partitions);
    return path.join(partitionDir(this.dataDir, p), COLD_DIR, `${encodeURIComponent(address)}.json`);
  }

  write(address: string, state: unknown): void {
    const f = this.file(address);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    writeFileAtomicSync(f, JSON.stringify(state));
  }

  read(address: string): unknown | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.file(address), 'utf8')) as unknown;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  remove(address: string): void {
    fs.rmSync(this.file(address), { force: true });
  }

  /** How many actors of the given partitions are cold (for the status figures). */
  count(partitions: number[]): number {
    let n = 0;
    for (const p of partitions) {
      try {
        n += fs.readdirSync(path.join(partitionDir(this.dataDir, p), COLD_DIR)).filter((f) => f.endsWith('.json')).length;
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    return n;
  }
}
