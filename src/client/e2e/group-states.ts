/**
 * The MLS groups a device is in (its own sending groups and those of the senders that welcomed
 * it), by group id: in memory, and in the device's storage (`gs:<id>`) written a little after a
 * change (many records change a group in a row) and before the client closes.
 */
import { ClientCode, ImgcError } from '../errors.js';
import { loadState, saveState, type ClientConfig, type ClientState } from './mls.js';
import type { E2EStorage } from './storage.js';

/** How long after a change the groups are written (ms). */
const WRITE_AFTER_MS = 100;

export class GroupStates {
  private readonly groups = new Map<string, ClientState>();
  private readonly dirty = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `persist` false: memory only (the storage is the client's own memory anyway). */
  constructor(private readonly storage: E2EStorage, private readonly persist: boolean, private readonly warn: (e: ImgcError) => void) {}

  /** The groups kept in storage; one that does not decode is dropped. */
  load(config: ClientConfig): void {
    for (const k of this.storage.keys('gs:')) {
      const s = loadState(this.storage.get(k)!, config);
      if (s) this.groups.set(k.slice(3), s); else this.storage.delete(k);
    }
  }

  get(gid: string): ClientState | undefined { return this.groups.get(gid); }

  keep(gid: string, s: ClientState): void {
    this.groups.set(gid, s);
    if (!this.persist) return;
    this.dirty.add(gid);
    this.timer ??= setTimeout(() => this.flush(), WRITE_AFTER_MS);
  }

  forget(gid: string): void {
    this.groups.delete(gid);
    this.dirty.delete(gid);
    this.storage.delete(`gs:${gid}`);
  }

  /**
   * Writes what waits to be written. A storage that refuses (a browser's quota) is reported; the
   * groups stay in memory and are tried again with the next change.
   */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      for (const gid of this.dirty) {
        const s = this.groups.get(gid);
        if (s) this.storage.set(`gs:${gid}`, saveState(s));
        this.dirty.delete(gid);
      }
    } catch (e) {
      this.warn(new ImgcError(ClientCode.E2E_UNREADABLE, `the end-to-end state could not be stored: ${(e as Error).message}`));
    }
  }
}
