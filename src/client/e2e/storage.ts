/**
 * Where a device keeps its end-to-end state: its keys, the private halves of its key packages,
 * its MLS groups, and the text of the messages it already read (MLS deletes a message's key once
 * used, so reading history again needs the text kept here). A string map, so that a browser's
 * localStorage, a file (the CLI) or memory can hold it; synchronous so that a turn's changes are
 * kept in order.
 */
export interface E2EStorage {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
  delete(key: string): void;
  /** Every key that starts with `prefix`. */
  keys(prefix: string): string[];
}

/** Memory only: the device lives as long as the client (the default). */
export class MemoryStorage implements E2EStorage {
  readonly map = new Map<string, string>();
  get(key: string): string | undefined { return this.map.get(key); }
  set(key: string, value: string): void { this.map.set(key, value); }
  delete(key: string): void { this.map.delete(key); }
  keys(prefix: string): string[] { return [...this.map.keys()].filter((k) => k.startsWith(prefix)); }
}

/** A browser's localStorage (or any Web Storage), under a prefix. */
export class WebStorage implements E2EStorage {
  constructor(private readonly store: Storage, private readonly prefix = 'imgc.e2e.') {}
  get(key: string): string | undefined { return this.store.getItem(this.prefix + key) ?? undefined; }
  /**
   * Over the quota (some 5 MB a site), the kept texts go first: they are a cache of what was read,
   * while keys and group states are what reading needs.
   */
  set(key: string, value: string): void {
    try {
      this.store.setItem(this.prefix + key, value);
    } catch (e) {
      const texts = this.keys('pt:').filter((k) => k !== key);
      if (texts.length === 0) throw e;
      for (const k of texts) this.delete(k);
      this.store.setItem(this.prefix + key, value);
    }
  }
  delete(key: string): void { this.store.removeItem(this.prefix + key); }
  keys(prefix: string): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.store.length; i++) {
      const k = this.store.key(i);
      if (k?.startsWith(this.prefix + prefix)) out.push(k.slice(this.prefix.length));
    }
    return out;
  }
}
