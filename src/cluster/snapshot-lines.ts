/**
 * What a snapshot (snapshots.ts) holds, as NDJSON: one line per record, state or membership, read
 * from a store a page at a time, and the last line `{"count":N}`, the number of lines before it (a
 * snapshot cut short, or with lines lost, does not add up). Every line is checked when it is read
 * back: a line of the wrong shape is refused by its number, never applied as something else.
 *
 * - a record:     {"conv","offset","at","from","mid"?,"head","tail"} (a `LogEntry`)
 * - a state:      {"address","state"}
 * - a membership: {"account","conv","since"}
 */
import { isDamagedState, type AccountMembership, type LogEntry, type Store } from '../store/ports';
import { partitionConvs } from './stored-partitions';

/** States that are no part of the cluster's shared state: a node's own marks (the replica's applied sequence, the partitions it keeps). */
export const NODE_OWN = 'cluster:';

/** Items read from the store per page (and at most so many lines in one piece of text handed on). */
const PAGE = 512;

export type Line =
  | { t: 'record'; entry: LogEntry }
  | { t: 'state'; address: string; state: unknown }
  | { t: 'member'; m: AccountMembership }
  | { t: 'count'; count: number };

/** A line that is not what a snapshot holds: where, and what is wrong with it. */
export class BadLine extends Error {
  constructor(readonly line: number, what: string) {
    super(`line ${line}: ${what}`);
    this.name = 'BadLine';
  }
}

/** Counts the lines a writer produced (the last line says it; the writer reports it). */
export interface Tally { count: number }

function recordLine(e: LogEntry): string {
  return JSON.stringify({ conv: e.conv, offset: e.offset, at: e.at, from: e.from, ...(e.mid !== undefined ? { mid: e.mid } : {}), head: e.head, tail: e.tail });
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isOffset = (x: unknown): x is number => isCount(x) && x > 0;

/** A record line's fields, checked; undefined if one is missing or of the wrong type. */
function recordOf(o: Record<string, unknown>): LogEntry | undefined {
  const { conv, offset, at, from, mid, head, tail } = o;
  if (typeof conv !== 'string' || !isOffset(offset) || typeof at !== 'number' || typeof head !== 'string' || typeof tail !== 'string') return undefined;
  if (from !== null && typeof from !== 'string') return undefined;
  if (mid !== undefined && typeof mid !== 'string') return undefined;
  return { conv, offset, at, from, ...(mid !== undefined ? { mid } : {}), head, tail };
}

/** One line of text as what it holds, or a BadLine. */
export function parseLine(text: string, n: number): Line {
  let o: unknown;
  try { o = JSON.parse(text); } catch { throw new BadLine(n, 'not JSON'); }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new BadLine(n, 'not a JSON object');
  const r = o as Record<string, unknown>;
  if ('count' in r) {
    if (!isCount(r.count)) throw new BadLine(n, 'a count that is no count');
    return { t: 'count', count: r.count };
  }
  if ('address' in r) {
    if (typeof r.address !== 'string' || r.address.startsWith(NODE_OWN) || r.state === undefined) throw new BadLine(n, 'a state without its address or value');
    return { t: 'state', address: r.address, state: r.state };
  }
  if ('account' in r) {
    if (typeof r.account !== 'string' || typeof r.conv !== 'string' || !isCount(r.since)) throw new BadLine(n, 'a membership without its account, conversation or since');
    return { t: 'member', m: { account: r.account, conv: r.conv, since: r.since } };
  }
  const entry = recordOf(r);
  if (entry === undefined) throw new BadLine(n, 'a record without one of conv, offset, at, from, head, tail');
  return { t: 'record', entry };
}

/**
 * Every retained record of the conversations of `partition`, conversation by conversation, each in
 * offset order, as pieces of NDJSON text of at most PAGE lines (an empty piece after a page of
 * conversations of other partitions: the reader yields to the event loop at every piece), then the
 * count line.
 */
export async function* partitionLines(store: Store, partition: number, partitions: number, tally: Tally): AsyncGenerator<string> {
  const log = store.log;
  for (const convs of partitionConvs(store, partition, partitions, PAGE)) {
    for (const conv of convs) {
      for (let from = 0; ;) {
        const page = log.read({ conv, after: from, limit: PAGE, direction: 'forward' });
        if (page.length === 0) break;
        from = page[page.length - 1]!.offset;
        tally.count += page.length;
        yield page.map((e) => `${recordLine(e)}\n`).join('');
        if (page.length < PAGE) break;
      }
    }
    yield '';
  }
  yield `${JSON.stringify({ count: tally.count })}\n`;
}

/**
 * Every actor state but the node's own (`cluster:`), in address order, then every membership, in
 * (account, conversation) order, as pieces of NDJSON text of at most PAGE lines, then the count line.
 * A state whose stored bytes are damaged is no state to hand on: the snapshot is refused (the
 * ledger is then not trimmed below it, and still holds the state).
 */
export async function* sharedLines(store: Store, tally: Tally): AsyncGenerator<string> {
  for (let after: string | undefined; ;) {
    const addresses = store.states.list('', after, PAGE);
    if (addresses.length === 0) break;
    after = addresses[addresses.length - 1];
    let text = '';
    for (const address of addresses) {
      if (address.startsWith(NODE_OWN)) continue;
      const state = store.states.get(address);
      if (state === undefined) continue; // deleted since the listing
      if (isDamagedState(state)) throw new Error(`state ${address} is damaged in this node's store: no snapshot of the shared state from it`);
      text += `${JSON.stringify({ address, state })}\n`;
      tally.count++;
    }
    yield text;
  }
  for (let after: { account: string; conv: string } | undefined; ;) {
    const page = store.positions.allMemberships(after, PAGE);
    if (page.length === 0) break;
    after = page[page.length - 1];
    tally.count += page.length;
    yield page.map((m) => `${JSON.stringify({ account: m.account, conv: m.conv, since: m.since })}\n`).join('');
  }
  yield `${JSON.stringify({ count: tally.count })}\n`;
}
