/**
 * The language of decided output: what the actors decided, as operations the applier carries out
 * on this node's store and sockets. Embedded, they are applied at once; in a cluster they travel in
 * ledger entries (cluster/entry.ts) and every node holding the partition applies them in order.
 * Both modes turn a batch of actor output into operations here, so "a change" means one thing.
 */
import type { ChangeMade } from '../actors/edits';
import type { Post, Reply, StateOut } from '../actors/envelopes';
import type { Request } from '../protocol/frames';
import type { ConvId, NewEntry } from '../store/ports';

export type Op =
  /** A message or notice: stored once in its conversation's log, pushed to who is online. */
  | { t: 'post'; post: Post; at: number }
  /** An actor's new state (and who joined or left its conversation). */
  | { t: 'state'; state: StateOut }
  /**
   * An edit or delete, decided against the conversation's log where its records are (edits.ts): a
   * new record, and the original rewritten; `conn` is answered with the record's offset.
   */
  | { t: 'change'; change: ChangeMade; conn: number; callback?: string; at: number }
  /** An answer to a connection, released once what it confirms is durable. */
  | { t: 'reply'; conn: number; frame: string }
  /**
   * A record moved in from elsewhere (an embedded data directory, `imgc-cluster import`): stored,
   * pushed to no one; at `offset` when the import gives it one (the cluster keeps the import's offsets).
   */
  | { t: 'append'; entry: NewEntry; offset?: number }
  /** Moved in with its records: `account` reads `conv` from offset `since` on. */
  | { t: 'join'; account: string; conv: ConvId; since: number }
  /** Retention by age: the records of `conv` through `upTo` go (proposed by one sweep, applied everywhere alike). */
  | { t: 'trim'; conv: ConvId; upTo: number }
  /** `node` owns `partition` from this entry on: entries of an earlier owner after it are refused (cluster only). */
  | { t: 'claim'; partition: number; node: string };

/** The operation of a change `d` decided for the request `r` of connection `conn`, made `at`. */
export function changeOp(d: ChangeMade, conn: number, r: Request, at: number): Extract<Op, { t: 'change' }> {
  return { t: 'change', change: d, conn, at, ...(r.callback !== undefined ? { callback: r.callback } : {}) };
}

/** What a shard's actors decide: posts, new states, and answers. */
export type Decided = Post | StateOut | Reply;

/** The operations of one route: a partition's actors (`part`), or -1 for output with no partition. */
export interface Route { part: number; ops: Op[] }

/**
 * A batch of actor output as operations, by route, in order within each route. An answer whose
 * route changes something (a post or a state) confirms that change, so it becomes a `reply`
 * operation that leaves once the change is durable; an answer whose route changes nothing (a
 * `detail`, a refusal) is `immediate`.
 */
export function routeDecided(items: readonly Decided[], now: number): { routes: Route[]; immediate: Reply[] } {
  const byPart = new Map<number, Decided[]>();
  for (const item of items) {
    const p = item.part ?? -1;
    const list = byPart.get(p);
    if (list) list.push(item); else byPart.set(p, [item]);
  }
  const routes: Route[] = [];
  const immediate: Reply[] = [];
  for (const [part, list] of byPart) {
    const changes = list.some((i) => i.t !== 'reply');
    const ops: Op[] = [];
    for (const item of list) {
      if (item.t === 'post') ops.push({ t: 'post', post: item, at: now });
      else if (item.t === 'state') ops.push({ t: 'state', state: item });
      else if (changes) ops.push({ t: 'reply', conn: item.conn, frame: item.frame });
      else immediate.push(item);
    }
    if (ops.length > 0) routes.push({ part, ops });
  }
  return { routes, immediate };
}
