/**
 * The text of the encrypted messages this device read or sent, by the hash of their ciphertext:
 * MLS deletes a message's key once it is used (forward secrecy), so reading history again, and
 * seeing one's own messages, needs the text kept on the device. Bounded: the newest SLOTS are
 * kept, in a ring of storage keys (`pt:<slot>`), so a long-lived device's storage does not grow.
 */
import { hex, utf8, type CiphersuiteImpl } from './mls.js';
import type { E2EStorage } from './storage.js';

/** Messages whose text is kept. */
export const SLOTS = 5000;

export class Plaintexts {
  /** Hash → slot, built from storage once. */
  private index: Map<string, number> | undefined;
  private next = 0;

  constructor(private readonly storage: E2EStorage, private readonly slots = SLOTS) {}

  async get(ciphertext: string, cs: CiphersuiteImpl): Promise<{ msg: unknown } | undefined> {
    const h = await this.hash(ciphertext, cs);
    const slot = this.load().get(h);
    const v = slot === undefined ? undefined : this.storage.get(`pt:${slot}`);
    if (v === undefined) return undefined;
    const [hh, msg] = JSON.parse(v) as [string, unknown];
    return hh === h ? { msg } : undefined;
  }

  async put(ciphertext: string, msg: unknown, cs: CiphersuiteImpl): Promise<void> {
    const h = await this.hash(ciphertext, cs);
    const index = this.load();
    if (index.has(h)) return;
    const slot = this.next;
    this.next = (this.next + 1) % this.slots;
    const old = this.storage.get(`pt:${slot}`);
    if (old !== undefined) index.delete((JSON.parse(old) as [string])[0]);
    this.storage.set(`pt:${slot}`, JSON.stringify([h, msg ?? null]));
    this.storage.set('pt-next', String(this.next));
    index.set(h, slot);
  }

  private load(): Map<string, number> {
    if (this.index) return this.index;
    this.index = new Map();
    for (const k of this.storage.keys('pt:')) {
      try { this.index.set((JSON.parse(this.storage.get(k)!) as [string])[0], Number(k.slice(3))); } catch { this.storage.delete(k); }
    }
    this.next = Number(this.storage.get('pt-next') ?? 0) % this.slots;
    return this.index;
  }

  private async hash(ciphertext: string, cs: CiphersuiteImpl): Promise<string> {
    return hex(await cs.hash.digest(utf8(ciphertext)));
  }
}
