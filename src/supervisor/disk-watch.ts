/**
 * The free-disk watermark: the data directory's free space, read with statfs every CHECK_MS (never
 * per request). Below `--min-free-mb` the node is `low`: admission refuses what would start
 * something new (a group, a first direct message between two accounts) with 45007, so the space
 * left goes to the conversations that exist; above it again, they are taken. One log line per
 * change.
 */
import { statfs, statfsSync } from 'node:fs';
import type { Logger } from '../log';

export const CHECK_MS = 5000;

const MB = 1024 * 1024;

export class DiskWatch {
  /** Free space is under the watermark. */
  low = false;
  /** Free bytes at the last check (undefined: not read, or statfs failed). */
  freeBytes: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly dir: string, private readonly minFreeMb: number, private readonly log: Logger, private readonly intervalMs = CHECK_MS) {}

  /** Reads once now (so the first request already sees it), then every interval. */
  start(): void {
    if (this.minFreeMb <= 0) return;
    try {
      this.update(statfsSync(this.dir));
    } catch (err) {
      this.failed(err);
    }
    this.timer = setInterval(() => statfs(this.dir, (err, s) => (err ? this.failed(err) : this.update(s))), this.intervalMs);
    this.timer.unref();
  }

  stop(): void { clearInterval(this.timer); }

  private update(s: { bavail: number; bsize: number }): void {
    this.freeBytes = s.bavail * s.bsize;
    const low = this.freeBytes < this.minFreeMb * MB;
    if (low === this.low) return;
    this.low = low;
    const detail = { freeMb: Math.floor(this.freeBytes / MB), minFreeMb: this.minFreeMb, dir: this.dir };
    if (low) this.log.warn(detail, 'free disk space under --min-free-mb: new groups and new conversations are refused (45007)');
    else this.log.info(detail, 'free disk space above --min-free-mb again: new groups and conversations are taken');
  }

  /** statfs failing says nothing about space: the last reading stands; logged at debug. */
  private failed(err: unknown): void {
    this.log.debug({ err, dir: this.dir }, 'free disk space could not be read');
  }
}
