/**
 * End-to-end storage in a JSON file, for Node (the CLI keeps its device beside its key): read once
 * at start, written privately (mode 0600, through a temporary file and a rename) shortly after a
 * change and by `save()` (call it when the client closes). A process killed mid-way loses at most
 * the last fraction of a second of group state. Not in the browser entry (it needs node:fs).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { E2EStorage } from './storage.js';

/** Writes `data` to `path` as JSON, readable by its owner only, replacing the file at once. */
export type WriteFile = (path: string, data: unknown) => void;

export const writePrivate: WriteFile = (path, data) => {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
};

export class FileStorage implements E2EStorage {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private dirty = false;

  private constructor(private readonly path: string, private readonly map: Map<string, string>, private readonly write: WriteFile) {}

  /** The storage in `path` (empty when the file does not exist yet). */
  static open(path: string, write: WriteFile = writePrivate): FileStorage {
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
