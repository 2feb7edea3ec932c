/**
 * The members of a group, as the main thread sees them for ephemeral traffic (typing, read
 * receipts, `online` in `detail`): read from the group's stored state (`group:<id>`, which the
 * delivery actor writes in the turn the group actor decides a change) and cached, a bounded LRU,
 * dropped whenever a new state of the group comes through the node. Nothing here decides
 * membership for stored traffic: the group actor does.
 */
import { LRUCache } from 'lru-cache';
import type { ActorStates } from '../store/ports';
import { groupAddress } from './address';
import type { GroupRecord } from './group-state';

export class GroupMembers {
  private readonly cache = new LRUCache<string, ReadonlySet<string>>({ max: 10_000 });

  constructor(private readonly states: ActorStates) {}

  /** The members of group `id` (an empty set for a group that does not exist). */
  of(id: string): ReadonlySet<string> {
    let m = this.cache.get(id);
    if (m === undefined) {
      const g = this.states.get(groupAddress(id)) as GroupRecord | undefined;
      m = new Set(g?.group ?? []);
      this.cache.set(id, m);
    }
    return m;
  }

  /** A new state of the actor at `address` was stored: its cached member list is stale. */
  changed(address: string): void {
    if (address.startsWith('group:')) this.cache.delete(address.slice('group:'.length));
  }
}
