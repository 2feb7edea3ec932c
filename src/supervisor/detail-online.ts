/**
 * `detail` with `"online":true` (see DetailOnline below): the one request whose answer the node
 * completes on the thread that holds the sockets.
 */
import type { Presence } from '../actors/presence';

/**
 * A group `detail` answer asked for with `"online":true` gets the added keys `online` (the members
 * with a signed-in socket now, at most DETAIL_ONLINE_MAX of them) and `onlineCount`: computed here,
 * on the thread that knows the sockets (the group actor on its shard does not). Unchanged clients
 * never ask, and get the record exactly as before. The node remembers which (connection, group)
 * asked, until the answer (or its error) comes back or the connection closes.
 */
export class DetailOnline {
  private readonly pending = new Map<number, Map<string, number>>();

  constructor(private readonly presence: () => Presence | undefined) {}

  /** A `detail` with `online: true` is on its way to the group's shard. */
  asked(conn: number, id: string): void {
    let m = this.pending.get(conn);
    if (m === undefined) { m = new Map(); this.pending.set(conn, m); }
    if (m.size < 100) m.set(id, (m.get(id) ?? 0) + 1);
  }

  /** An answer to `conn`: a `detail` notice it asked `online` for gets the keys; anything else passes. */
  answer(conn: number, frame: string): string {
    const m = this.pending.get(conn);
    if (m === undefined || !frame.includes('"act":"detail"')) return frame;
    let f: { type?: unknown; msg?: unknown; request?: { id?: unknown }; method?: { act?: unknown; cat?: unknown } };
    try { f = JSON.parse(frame) as typeof f; } catch { return frame; }
    if (f.method?.act !== 'detail' || f.method.cat !== 'group') return frame;
    const g = f.msg as { id?: unknown; group?: unknown } | null;
    const id = f.type === 'notice' ? g?.id : f.request?.id;
    const n = typeof id === 'string' ? m.get(id) : undefined;
    if (n === undefined) return frame;
    if (n > 1) m.set(id as string, n - 1); else m.delete(id as string);
    if (m.size === 0) this.pending.delete(conn);
    const presence = this.presence();
    if (f.type !== 'notice' || presence === undefined || g === null || typeof g !== 'object' || !Array.isArray(g.group)) return frame;
    const online = presence.onlineOf(g.group as string[]);
    return JSON.stringify({ ...f, msg: { ...g, online: online.slice(0, DETAIL_ONLINE_MAX), onlineCount: online.length } });
  }

  closed(conn: number): void { this.pending.delete(conn); }
}

/** Members named in `online` of a `detail` answer (the answer must stay within its size bound). */
const DETAIL_ONLINE_MAX = 500;
