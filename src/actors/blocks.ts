/**
 * Blocking, on the thread that holds the sockets: an account's block list (`block`, `unblock`,
 * `blocked`), and the decisions that honour it, asked by the node (direct messages, adds to
 * groups), typing and presence.
 *
 * The list is the account's actor state `blocks:<account>` (a JSON array of accounts, at most
 * BLOCKS_MAX), written beside the shards through the carrier like any state, so it is stored,
 * replicated in a cluster and survives restarts; only the account itself can read or change it.
 * Lists are read through an LRU of parsed sets (every direct message asks), dropped when their
 * state is applied again.
 *
 * Adds to groups are screened here, on the main thread, before the call travels to the group's
 * worker thread: the call carries the result (`GroupCall.screened`), so the group actor needs no
 * block list of its own. An add is screened out when the added account blocked the adder
 * (silently), or when the adder is a stranger to it and it has been added by strangers
 * `--stranger-adds-per-hour` times this hour (the adder is told). A stranger is an account the
 * added one never wrote to: no record of its own among the newest CONTACT_SCAN of their direct
 * conversation. (Writing first to someone, or adding them to a group, does not make an account a
 * contact: a throwaway account could do both.)
 */
import { LRUCache } from 'lru-cache';
import { Code } from '../protocol/codes';
import { errorFrame, noticeFrame, type Request } from '../protocol/frames';
import { directConv, type ConversationLog, type Positions } from '../store/ports';
import type { StateOut } from './envelopes';
import type { Peer } from './peer';

export const BLOCKS_PREFIX = 'blocks:';
/** Accounts one account may block. */
export const BLOCKS_MAX = 1000;
/** Records of a direct conversation looked at for one of the added account's own. */
export const CONTACT_SCAN = 100;
/** Block lists kept parsed in memory. */
const CACHE_MAX = 50_000;

export const blocksAddress = (account: string): string => BLOCKS_PREFIX + account;

/** The accounts of a stored list; anything malformed reads as an empty list. */
export function listOf(state: unknown): string[] {
  return Array.isArray(state) ? state.filter((a): a is string => typeof a === 'string') : [];
}

export type BlockDecision = { list?: string[]; msg: unknown } | { code: typeof Code.UNEXPECTED_INPUT; error: string };

/**
 * `block`, `unblock` or `blocked` by `me` against its current list: the answer's `msg`, and the
 * new list when it changes (blocking twice or unblocking someone not blocked changes nothing).
 */
export function decideBlock(me: string, list: readonly string[], r: Request, max = BLOCKS_MAX): BlockDecision {
  if (r.act === 'blocked') return { msg: { blocked: list } };
  const account = r.account as string;
  const has = list.includes(account);
  if (r.act === 'unblock') return has ? { list: list.filter((a) => a !== account), msg: { account, blocked: false } } : { msg: { account, blocked: false } };
  if (account === me) return { code: Code.UNEXPECTED_INPUT, error: 'an account cannot block itself' };
  if (has) return { msg: { account, blocked: true } };
  if (list.length >= max) return { code: Code.UNEXPECTED_INPUT, error: `the block list is full (${max} accounts)` };
  return { list: [...list, account], msg: { account, blocked: true } };
}

/** What screening an add needs to know. */
export interface AddChecks {
  /** `blocker` has `who` on its block list. */
  blocks(blocker: string, who: string): boolean;
  /** `account` has written to `adder` (they are contacts). */
  wroteTo(account: string, adder: string): boolean;
  /** Takes one of `account`'s hourly stranger adds; false when none is left. */
  takeStrangerAdd(account: string): boolean;
}

/** The accounts of a group add that stay out: blocked (silently) and over the stranger bound (told). */
export interface Screened { blocked: string[]; overQuota: string[] }

/** Screens the accounts `adder` names in a create, join or members (itself excepted). */
export function screenAdds(adder: string, named: readonly string[], c: AddChecks): Screened {
  const out: Screened = { blocked: [], overQuota: [] };
  for (const a of new Set(named)) {
    if (a === adder) continue;
    if (c.blocks(a, adder)) out.blocked.push(a);
    else if (!c.wroteTo(a, adder) && !c.takeStrangerAdd(a)) out.overQuota.push(a);
  }
  return out;
}

/** The accounts a group request adds: every member named by `create` and `members`, the account of a `join` (not oneself). */
export function addedBy(r: Request, me: string): string[] {
  if (r.act === 'create') return r.list as string[];
  if (r.act === 'members') return (r.members as string).split('_');
  if (r.act === 'join' && r.account !== me) return [r.account as string];
  return [];
}

export interface BlocksDeps {
  /** An actor's newest state (including one handed on and not applied yet). */
  stateOf(address: string): unknown;
  /** Hands on a new state (written beside the shards). */
  submit(state: StateOut): void;
  afterDurable(fn: () => void, lost?: () => void): void;
  readonly log: ConversationLog;
  readonly positions: Positions;
}

export class Blocks {
  private readonly cache = new LRUCache<string, ReadonlySet<string>>({ max: CACHE_MAX });
  /** `<account> <adder>` pairs found to be contacts (a record the account wrote stays until trimmed). */
  private readonly contacts = new LRUCache<string, true>({ max: CACHE_MAX });
  readonly counters = { blocks: 0, unblocks: 0, directDropped: 0, addsBlocked: 0, addsOverQuota: 0 };

  constructor(private readonly deps: BlocksDeps) {}

  /** `blocker` has `who` on its block list. */
  has(blocker: string, who: string): boolean {
    let set = this.cache.get(blocker);
    if (set === undefined) {
      set = new Set(listOf(this.deps.stateOf(blocksAddress(blocker))));
      this.cache.set(blocker, set);
    }
    return set.has(who);
  }

  /** A state was applied: a block list read before is stale. */
  changed(address: string): void {
    if (address.startsWith(BLOCKS_PREFIX)) this.cache.delete(address.slice(BLOCKS_PREFIX.length));
  }

  /** `account` wrote to `adder`: one of its own records among the newest of their direct conversation. */
  wroteTo(account: string, adder: string): boolean {
    const key = `${account} ${adder}`;
    if (this.contacts.has(key)) return true;
    const conv = directConv(account, adder);
    if (this.deps.positions.membership(account, conv) === undefined) return false;
    const wrote = this.deps.log.read({ conv, limit: CONTACT_SCAN, direction: 'backward' }).some((e) => e.from === account);
    if (wrote) this.contacts.set(key, true);
    return wrote;
  }

  /**
   * The accounts a group request of `adder` adds that must stay out (undefined: none, or the
   * request adds nobody); `takeStrangerAdd` is the node's hourly bound per added account.
   */
  screen(adder: string, r: Request, takeStrangerAdd: (account: string) => boolean): Screened | undefined {
    const named = addedBy(r, adder);
    if (named.length === 0) return undefined;
    const s = screenAdds(adder, named, { blocks: (b, w) => this.has(b, w), wroteTo: (a, by) => this.wroteTo(a, by), takeStrangerAdd });
    this.counters.addsBlocked += s.blocked.length;
    this.counters.addsOverQuota += s.overQuota.length;
    return s.blocked.length + s.overQuota.length > 0 ? s : undefined;
  }

  /** `block`, `unblock`, `blocked`: a change is answered once it is durable. */
  request(peer: Peer, r: Request): void {
    const me = peer.account!;
    const d = decideBlock(me, listOf(this.deps.stateOf(blocksAddress(me))), r);
    if ('code' in d) return void peer.send(errorFrame(d.code, d.error, r));
    const answer = noticeFrame('chat', r.act, d.msg, r.callback);
    if (d.list === undefined) return void peer.send(answer);
    if (r.act === 'block') this.counters.blocks++; else this.counters.unblocks++;
    this.deps.submit({ t: 'state', address: blocksAddress(me), state: d.list.length > 0 ? d.list : undefined });
    this.cache.delete(me);
    this.deps.afterDurable(() => peer.send(answer), () => peer.send(errorFrame(Code.STORAGE_FULL, 'the block list could not be stored (the disk is full); retry later', r)));
  }

  stats(): Record<string, number> { return { ...this.counters, listsCached: this.cache.size }; }
}
