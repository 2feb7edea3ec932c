/**
 * `ActorStates` on LMDB: each actor's state by address (`states` of schema.ts, JSON text).
 * A state put is copied at once as JSON text into the overlay (the caller may change its object)
 * and written once per turn, with the last state put (the text as it is: no second encoding).
 * A state whose checksum fails reads as a `DamagedState` (ports.ts), reported once.
 */
import { damagedState, type ActorStates } from '../ports';
import { jsonCopy } from '../common';
import { decodeState, seeds, textCodec } from './codecs';
import type { Core } from './core';

export class LmdbStates implements ActorStates {
  constructor(private readonly c: Core) {}

  get(address: string): unknown {
    return this.c.peek('states.get', () => {
      const pending = this.c.pending.state(address);
      if (pending === undefined) return this.stored(address);
      // A fresh copy each time, as from the data.
      return pending === null ? undefined : JSON.parse(pending);
    });
  }

  private stored(address: string): unknown {
    const raw = this.c.dbs.states.get(address);
    if (raw === undefined) return undefined;
    const s = decodeState(raw, seeds.states(address));
    if (s !== undefined) return s.value;
    this.c.damage.found('states', address, { address });
    return damagedState(address);
  }

  put(address: string, state: unknown): void {
    this.c.writable();
    // Copied now (as JSON text): the caller may change its object before the end of the turn.
    const text = state === undefined ? null : jsonCopy(state);
    // Into the batch once, with the last state put, when it is sealed (core.ts).
    this.c.writer.touch();
    this.c.pending.current.states.set(address, text);
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
