/**
 * Which nodes a ledger entry concerns, in a line before it (entry.ts splitEntry), so that a node
 * with no part in an entry skips it unread: no decode, nothing applied. An entry concerns
 * - every node when it changes what every node keeps (states, memberships, claims, trims, imports,
 *   and a direct conversation's first record, which makes its two accounts members everywhere);
 * - the keeper of each partition whose records it holds (`parts`);
 * - the node of each connection it answers (`nodes`, from the connection ids);
 * - any node where an account it writes to has a socket (`accounts`: the hashes of its recipients
 *   and senders, account-hashes.ts; an entry writing to more than MAX_LISTED is for any node that
 *   holds a socket).
 * The publisher states this; each node decides on its own state at the entry's place in the
 * ledger, as it would have by reading it, so skipping changes nothing but the work: a node where a
 * recipient signs in later reads the record in its sign-in backlog, as before. An entry without
 * the line (older builds, claims, restores) is read by every node.
 */
import { accountHash, hashesFromText, hashesToText, MAX_LISTED, type AccountHashes } from '../account-hashes';
import { convPartition } from '../actors/address';
import type { Post } from '../actors/envelopes';
import { accountConv } from '../store/ports';
import type { Op } from './entry';
import { nodeOfConn } from './links';

/** Partitions listed at most; an entry touching more concerns every node. */
const MAX_PARTS = 64;

/**
 * A pure function of a string, remembered for the strings seen lately (the map starts over when it
 * holds `max`: no bookkeeping per hit). The publisher states every entry's accounts and partitions,
 * and the same accounts and conversations come back turn after turn: a map lookup is a fraction of
 * hashing an address again. Memory: `max` strings of at most a few hundred bytes each.
 */
function remembered<T>(fn: (s: string) => T, max: number): (s: string) => T {
  let m = new Map<string, T>();
  return (s) => {
    let v = m.get(s);
    if (v === undefined) {
      if (m.size >= max) m = new Map();
      v = fn(s);
      m.set(s, v);
    }
    return v;
  };
}

const hashOf = remembered(accountHash, 50_000);
const partitionsOf = new Map<number, (conv: string) => number>();
/** convPartition for `partitions`, remembered (a process has one partition count). */
function partitionFn(partitions: number): (conv: string) => number {
  let f = partitionsOf.get(partitions);
  if (f === undefined) { f = remembered((conv) => convPartition(conv, partitions), 20_000); partitionsOf.set(partitions, f); }
  return f;
}

export interface Interest {
  /** The publishing node and its number for the entry (its own entries it applies from memory). */
  node: string;
  id: number;
  /** Every node applies it. */
  all: boolean;
  /** Records it numbers (every node's offsets move past them, skipped or not). */
  records: number;
  parts: number[];
  nodes: string[];
  accounts: AccountHashes;
}

export interface InterestContext {
  partitions: number;
  /** Whether `conv` (a direct conversation) has no record yet: its first one makes its members everywhere. */
  fresh(conv: string): boolean;
}

/** What an entry of `ops`, published by `node` as its entry `id`, concerns. */
export function interestOf(node: string, id: number, ops: readonly Op[], ctx: InterestContext): Interest {
  const parts = new Set<number>();
  const nodes = new Set<string>();
  const accounts = new Set<number>();
  let all = false;
  let records = 0;
  const partOf = partitionFn(ctx.partitions);
  const account = (a: string | null): void => { if (a !== null && accounts.size <= MAX_LISTED) accounts.add(hashOf(a)); };
  const conn = (c: number): void => { nodes.add(nodeOfConn(c)); };
  const post = (p: Post): void => {
    account(p.from);
    for (const a of p.to) account(a);
    if (p.ackTo) conn(p.ackTo.conn);
  };
  for (const op of ops) {
    switch (op.t) {
      case 'post':
        post(op.post);
        if (op.post.conv === 'own') {
          records += op.post.to.length;
          for (const a of op.post.to) parts.add(partOf(accountConv(a)));
        } else {
          records++;
          parts.add(partOf(op.post.conv));
          if (op.post.conv.startsWith('d:') && ctx.fresh(op.post.conv)) all = true;
        }
        break;
      case 'change':
        records++;
        post(op.change.post);
        parts.add(partOf(op.change.conv));
        conn(op.conn);
        break;
      case 'reply': conn(op.conn); break;
      case 'append': if (op.offset === undefined) records++; all = true; break;
      case 'state': case 'join': case 'trim': case 'claim': all = true; break;
    }
  }
  return {
    node, id, all: all || parts.size > MAX_PARTS, records, parts: [...parts], nodes: [...nodes],
    accounts: accounts.size > MAX_LISTED ? 'any' : Int32Array.from(accounts),
  };
}

export function encodeInterest(i: Interest): string {
  return [i.node, i.id, i.all ? 1 : 0, i.records, i.parts.join(','), i.nodes.join(','), hashesToText(i.accounts)].join(';');
}

/** The line written by encodeInterest; undefined for anything else (the entry is then read). */
export function decodeInterest(s: string | undefined): Interest | undefined {
  if (s === undefined) return undefined;
  const f = s.split(';');
  if (f.length !== 7) return undefined;
  const [node, id, all, records, parts, nodes, listed] = f as [string, string, string, string, string, string, string];
  const accounts = hashesFromText(listed);
  const nums = (x: string): number[] | undefined => {
    if (x === '') return [];
    const out = x.split(',').map(Number);
    return out.every((n) => Number.isSafeInteger(n) && n >= 0) ? out : undefined;
  };
  const p = nums(parts);
  if (accounts === undefined || p === undefined || node === '' || !/^\d+$/.test(id) || !/^\d+$/.test(records) || (all !== '0' && all !== '1')) return undefined;
  return { node, id: Number(id), all: all === '1', records: Number(records), parts: p, nodes: nodes === '' ? [] : nodes.split(','), accounts };
}

/** This node as an entry's reader sees it, at the entry's place in the ledger. */
export interface Reader {
  self: string;
  /** Whether it keeps `partition`'s records now. */
  keeps(partition: number): boolean;
  /** Whether an account of `accounts` may be signed in on one of its sockets. */
  mayHold(accounts: AccountHashes): boolean;
}

/** Whether the reader has anything to do with an entry of interest `i`. */
export function concerns(i: Interest, r: Reader): boolean {
  return i.all || i.node === r.self || i.nodes.includes(r.self) || i.parts.some((p) => r.keeps(p)) || r.mayHold(i.accounts);
}
