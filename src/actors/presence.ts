/**
 * Presence (`{"cat":"chat","act":"presence","subscribe":[…],"unsubscribe":[…]}`), on the thread
 * that holds the sockets. An account is online while it has at least one signed-in socket: the
 * registry reports the first socket in and the last one out (`changed`), and every socket that
 * subscribed to that account gets
 * `{"type":"notice","method":{"cat":"chat","act":"presence"},"msg":{"account","online","lastSeen"}}`.
 *
 * Ephemeral by design: nothing here is ever written to the store. Subscriptions belong to a socket
 * (they end when it closes or signs out); after a restart every account is offline until it
 * reconnects. `lastSeen` (ms: when the account was last online, i.e. its last socket closed, or
 * now while it is online; null when not seen since this process started) is kept in memory only,
 * in a bounded LRU (LAST_SEEN_MAX accounts): an account evicted from it, or unseen since the
 * restart, reads `lastSeen: null`.
 *
 * Bounds: a socket may subscribe only to accounts it shares a conversation with (a direct
 * conversation with it exists, or a common group: the store's membership index decides, contacts.ts)
 * and that have not blocked its account (refused alike, so a block is not revealed; a subscription
 * made before the block gets no more changes of the blocker), to at
 * most PER_REQUEST accounts per request and SUBSCRIPTIONS_MAX in all, and may send at most
 * RATE_BURST presence requests at once, RATE_PER_S a second on average (more: error 44029).
 *
 * Cluster mode (design): the presence of an account is the set of nodes holding its sockets. Each
 * node would publish `(account, node, online)` when its own first socket of the account opens or
 * its last one closes (a JetStream KV key `presence.<account>.<node>` with a TTL the node renews,
 * so a dead node's entries expire), and keep the union per account it has subscribers for: the
 * account is online while the set is non-empty, and `changed` runs when the set goes from empty
 * to non-empty or back. Subscribers stay node-local; only the per-node bit crosses the cluster.
 */
import { LRUCache } from 'lru-cache';
import { Code } from '../protocol/codes';
import { errorFrame, noticeFrame, type Request } from '../protocol/frames';
import type { Positions } from '../store/ports';
import { groupsOf, sharesConversation } from './contacts';
import type { EphemeralOut } from './ephemeral-out';
import type { Peer, Peers } from './peer';
import type { BlockList } from './typing';

/** Accounts one socket may be subscribed to at once. */
export const SUBSCRIPTIONS_MAX = 1000;
/** Accounts one request may name (subscribe and unsubscribe together). */
export const PER_REQUEST = 100;
/** Presence requests per socket: a burst of RATE_BURST, RATE_PER_S a second on average. */
export const RATE_BURST = 10;
export const RATE_PER_S = 5;
/** Accounts whose last-seen time is remembered (in memory only). */
export const LAST_SEEN_MAX = 100_000;

export interface PresenceState { account: string; online: boolean; lastSeen: number | null }

interface Subscriber {
  peer: Peer;
  /** The account the socket was signed in as when it subscribed: a socket signed out or in as another stops receiving. */
  account: string;
  targets: Set<string>;
}

/** A socket's budget of presence requests (kept while the socket is open, subscribed or not). */
interface Bucket { tokens: number; refilledAt: number }

export interface PresenceDeps extends Peers {
  isOnline(account: string): boolean;
}

export class Presence {
  /** Subscribed account → ids of the sockets subscribed to it. */
  private readonly watchers = new Map<string, Set<number>>();
  private readonly subscribers = new Map<number, Subscriber>();
  private readonly buckets = new Map<number, Bucket>();
  private readonly lastSeen = new LRUCache<string, number>({ max: LAST_SEEN_MAX });
  readonly counters = { subscribeRequests: 0, refusedNotContact: 0, refusedCap: 0, rateLimited: 0, frames: 0 };

  constructor(private readonly peers: PresenceDeps, private readonly positions: Positions, private readonly out: EphemeralOut, private readonly blocks: BlockList) {}

  /** The registry: `account` got its first socket (online) or lost its last (offline). */
  changed(account: string, online: boolean, now = Date.now()): void {
    this.lastSeen.set(account, now);
    const ids = this.watchers.get(account);
    if (ids === undefined) return;
    const frame = presenceFrame({ account, online, lastSeen: now });
    for (const id of ids) {
      const s = this.subscribers.get(id);
      if (s === undefined || !this.current(s)) { this.drop(id); continue; }
      if (this.blocks.has(account, s.account)) continue;
      this.out.send(s.peer, frame);
      this.counters.frames++;
    }
  }

  /** The state of an account now. */
  state(account: string, now = Date.now()): PresenceState {
    const online = this.peers.isOnline(account);
    return { account, online, lastSeen: online ? now : (this.lastSeen.get(account) ?? null) };
  }

  /** `presence`: subscribe and/or unsubscribe; answered with the current state of every account subscribed. */
  request(peer: Peer, r: Request, now = Date.now()): void {
    const me = peer.account!;
    const subscribe = (Array.isArray(r.subscribe) ? r.subscribe : []) as string[];
    const unsubscribe = (Array.isArray(r.unsubscribe) ? r.unsubscribe : []) as string[];
    if (subscribe.length === 0 && unsubscribe.length === 0) {
      return void peer.send(errorFrame(Code.MISSING_PARAMS, 'presence needs "subscribe" or "unsubscribe" (arrays of accounts)', r));
    }
    if (subscribe.length + unsubscribe.length > PER_REQUEST) {
      return void peer.send(errorFrame(Code.UNEXPECTED_INPUT, `at most ${PER_REQUEST} accounts per presence request`, r));
    }
    let b = this.buckets.get(peer.id);
    if (b === undefined) { b = { tokens: RATE_BURST, refilledAt: now }; this.buckets.set(peer.id, b); }
    b.tokens = Math.min(RATE_BURST, b.tokens + ((now - b.refilledAt) * RATE_PER_S) / 1000);
    b.refilledAt = now;
    if (b.tokens < 1) {
      this.counters.rateLimited++;
      return void peer.send(errorFrame(Code.RATE_LIMITED, `at most ${RATE_PER_S} presence requests a second`, r));
    }
    b.tokens -= 1;
    let s = this.subscribers.get(peer.id);
    if (s !== undefined && !this.current(s)) { this.drop(peer.id); s = undefined; }
    s ??= { peer, account: me, targets: new Set() };
    this.counters.subscribeRequests++;
    this.subscribers.set(peer.id, s);

    for (const a of unsubscribe) this.unwatch(s, a);
    const wanted = [...new Set(subscribe)].filter((a) => a !== me && !s.targets.has(a));
    const refused: string[] = [];
    const allowed: string[] = [];
    if (wanted.length > 0) {
      const myGroups = groupsOf(this.positions, me);
      for (const a of wanted) (!this.blocks.has(a, me) && sharesConversation(this.positions, me, a, myGroups) ? allowed : refused).push(a);
      this.counters.refusedNotContact += refused.length;
    }
    if (s.targets.size + allowed.length > SUBSCRIPTIONS_MAX) {
      this.counters.refusedCap++;
      if (s.targets.size === 0) this.subscribers.delete(peer.id);
      return void peer.send(errorFrame(Code.UNEXPECTED_INPUT, `at most ${SUBSCRIPTIONS_MAX} presence subscriptions per connection (${s.targets.size} now)`, r));
    }
    for (const a of allowed) {
      s.targets.add(a);
      let ids = this.watchers.get(a);
      if (ids === undefined) { ids = new Set(); this.watchers.set(a, ids); }
      ids.add(peer.id);
    }
    if (s.targets.size === 0) this.subscribers.delete(peer.id);
    // The current state of every account asked for and allowed (also those already subscribed).
    const states = [...new Set(subscribe)].filter((a) => s.targets.has(a) && !this.blocks.has(a, me)).map((a) => this.state(a, now));
    peer.send(noticeFrame('chat', 'presence', { presence: states, refused, subscribed: s.targets.size }, r.callback));
  }

  /** A socket closed: its subscriptions end. */
  closed(peer: Peer): void {
    if (this.subscribers.get(peer.id)?.peer === peer) this.drop(peer.id);
    this.buckets.delete(peer.id);
  }

  /** Which of `accounts` are online now (for `online` in a group's `detail`). */
  onlineOf(accounts: Iterable<string>): string[] {
    const out: string[] = [];
    for (const a of accounts) if (this.peers.isOnline(a)) out.push(a);
    return out;
  }

  stats(): Record<string, number> {
    return { ...this.counters, subscribers: this.subscribers.size, watched: this.watchers.size, lastSeenKept: this.lastSeen.size };
  }

  /** The socket is still open and signed in as the account it subscribed as. */
  private current(s: Subscriber): boolean {
    return this.peers.peer(s.peer.id) === s.peer && s.peer.account === s.account;
  }

  private unwatch(s: Subscriber, account: string): void {
    if (!s.targets.delete(account)) return;
    const ids = this.watchers.get(account);
    ids?.delete(s.peer.id);
    if (ids?.size === 0) this.watchers.delete(account);
  }

  private drop(id: number): void {
    const s = this.subscribers.get(id);
    if (s === undefined) return;
    for (const a of [...s.targets]) this.unwatch(s, a);
    this.subscribers.delete(id);
  }
}

export function presenceFrame(p: PresenceState): string {
  return noticeFrame('chat', 'presence', p);
}
