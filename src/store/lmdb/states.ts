/**
 * `ActorStates` on LMDB: each actor's state by address (`states` of schema.ts, JSON encoded).
 * A state put is copied at once as JSON text into the overlay (the caller may change its object)
 * and written once per turn, with the last state put.
 */
import type { ActorStates } from '../ports';
import { jsonCopy } from '../common';
import type { Core } from './core';

export class LmdbStates implements ActorStates {
  constructor(private readonly c: Core) {}

  get(address: string): unknown {
    return this.c.peek('states.get', () => {
      const pending = this.c.overlay.states.get(address);
      if (pending === undefined) return this.c.dbs.states.get(address);
      // A fresh copy each time, as from the data.
      return pending === null ? undefined : JSON.parse(pending);
    });
  }

  put(address: string, state: unknown): void {
    this.c.writable();
    const { overlay } = this.c;
    const { states } = this.c.dbs;
    // Copied now (as JSON text): the caller may change its object before the end of the turn.
    const text = state === undefined ? null : jsonCopy(state);
    if (!overlay.states.has(address)) {
      // Once per transaction, with the last state put.
      this.c.writer.queue(() => {
        const v = overlay.states.get(address)!;
        if (v === null) states.removeSync(address);
        else states.putSync(address, JSON.parse(v));
      }, (text?.length ?? 0) + address.length + 64);
    }
    overlay.states.set(address, text);
  }

  list(prefix: string, after: string | undefined, limit: number): string[] {
    return this.c.read('states.list', () => {
      if (limit <= 0) return [];
      const start = after !== undefined && after > prefix ? after : prefix;
      const out: string[] = [];
      for (const k of this.c.dbs.states.getKeys({ start })) {
        if (!k.startsWith(prefix)) {
          if (k > prefix) break; // keys are in byte order: past the prefix, nothing more matches
          continue;
        }
        if (after !== undefined && k <= after) continue;
        out.push(k);
        if (out.length >= limit) break;
      }
      return out;
    });
  }
}
