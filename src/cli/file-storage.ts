/**
 * The CLI's end-to-end storage: a JSON file beside the key (mode 0600), read once at start and
 * written when something changed: shortly after a change and when the client closes. A command
 * killed mid-way loses at most the last fraction of a second of group state.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { E2EStorage } from '../client/index.js';

/** Writes `data` to `path` privately and atomically (the CLI's `writePrivate`). */
export type WriteFile = (path: string, data: unknown) => void;

export class FileStorage implements E2EStorage {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private dirty = false;

  private constructor(private readonly path: string, private readonly map: Map<string, string>, private readonly write: WriteFile) {}

  /** The storage in `path` (empty when the file does not exist yet). */
  static open(path: string, write: WriteFile): FileStorage {
    const data = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) as Record<string, string> : {};
    return new FileStorage(path, new Map(Object.entries(data)), write);
  }

  get(key: string): string | undefined { return this.map.get(key); }
  set(key: string, value: string): void { this.map.set(key, value); this.changed(); }
  delete(key: string): void { if (this.map.delete(key)) this.changed(); }
  keys(prefix: string): string[] { return [...this.map.keys()].filter((k) => k.startsWith(prefix)); }

  /** Writes the file now if anything changed. */
  save(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.dirty) return;
    this.dirty = false;
    this.write(this.path, Object.fromEntries(this.map));
  }

  private changed(): void {
    this.dirty = true;
    this.timer ??= setTimeout(() => this.save(), 200);
    this.timer.unref?.();
  }
}
