/**
 * `imgc-cluster import DATA_DIR` (see cluster-admin.ts): an embedded server's data directory moved
 * into an empty cluster, as ledger entries (src/cluster/entry.ts): each record kept by the node keeping its partition:
 *
 * 1. every retained record of every conversation, as `append` operations in the order of their old
 *    offsets across all conversations, each with its new offset: its rank among the old ones (1..N),
 *    kept by the node that keeps its conversation's partition. Offsets a record
 *    names (an edit's `"edit"`, a delete's `"delete"`, an original's `"edited"`/`"deleted"`) are
 *    rewritten to the new ones (to 0 when the record they name is not retained);
 * 2. every membership of every account found (`join`, with `since` moved to the new offset of the
 *    first record at or after it); accounts are found in the conversation ids (`d:<a>:<b>`,
 *    `a:<account>`), in the group records (members, manager, founder) and in the read receipts;
 * 3. the actor states under `group:`, `verify:`, `sessions:` and `read:` (`state` operations without
 *    joined/left; a read position is an offset: moved to the new offset of the newest record at or
 *    before it);
 * 4. the positions of those accounts (delivered, acknowledged: moved as read positions are) into the
 *    positions bucket.
 *
 * All of it on the subject `ledger.n.import`, batched into entries under ENTRY_BYTES. The resume key
 * is not carried over: the cluster has its own, so clients sign in with `sig` once again.
 *
 * The embedded server must be stopped (the data directory is only read, but its offsets must not
 * move meanwhile), and no node of the cluster may run until the import is done.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { maxPayload } from '../cluster/engine';
import type { Op } from '../cluster/entry';
import { openStore } from '../store/open';
import type { AccountPositions, ConvId, LogEntry, NewEntry, Store } from '../store/ports';
import { openEngine, type ClusterTarget } from './cluster-backup';
import { LedgerWriter, OpBatcher, Refusal, requireEmptyCluster } from './ledger-writer';

/** The node name on the import's entries (and its subject `ledger.n.import`); no node's id (base 36, at most 4 characters) is this. */
export const IMPORT_NODE = 'import';

/** Actor states carried over (the rest, e.g. `migration:v1`, is the embedded server's own). */
const STATE_PREFIXES = ['group:', 'verify:', 'sessions:', 'read:', 'keys:'];
/** Records held at once by the merge, over all conversations. */
const MERGE_BUDGET = 200_000;
const PAGE = 1000;

/** Old offsets, sorted: a record's new offset is its rank. */
export class OffsetMap {
  constructor(private readonly sorted: Float64Array) {}

  get size(): number { return this.sorted.length; }

  /** Old offsets <= `v`. */
  private upper(v: number): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]! <= v) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  /** The new offset of the record at old offset `old`; 0 when no retained record is there. */
  exact(old: number): number {
    const n = this.upper(old);
    return n > 0 && this.sorted[n - 1] === old ? n : 0;
  }

  /** The new offset of the newest record at or before `old` (0: none): for delivered, acked and read positions. */
  atOrBefore(old: number): number { return old <= 0 ? 0 : this.upper(old); }

  /** The new offset of the first record at or after `old` (size + 1: none yet): for a membership's `since`. */
  atOrAfter(old: number): number { return old <= 0 ? old : this.upper(old - 1) + 1; }
}

/** Top-level keys of a record's frame that name another record's offset. */
const REF_KEYS = ['edit', 'delete', 'edited', 'deleted'] as const;

/**
 * The record with the offsets it names moved to the new ones. Its frame is parsed (with a sentinel
 * recipient, as edits.ts rewrites a record) only when its tail may hold such a key.
 */
export function remapRecord(e: LogEntry, map: OffsetMap): NewEntry {
  const out: NewEntry = { conv: e.conv, at: e.at, from: e.from, head: e.head, tail: e.tail };
  if (e.mid !== undefined) out.mid = e.mid;
  if (!/"(edit|delete|edited|deleted)":\d/.test(e.tail)) return out;
  const sentinel = '\u0000to:import-sentinel';
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(`${e.head}${JSON.stringify(sentinel)}${e.tail}}`) as Record<string, unknown>;
  } catch {
    return out;
  }
  let changed = false;
  for (const k of REF_KEYS) {
    const v = o[k];
    if (typeof v === 'number') { o[k] = map.exact(v); changed = true; }
  }
  if (!changed) return out;
  const s = JSON.stringify(o);
  const mark = JSON.stringify(sentinel);
  const i = s.indexOf(mark);
  if (i < 0) return out;
  out.head = s.slice(0, i);
  out.tail = s.slice(i + mark.length, -1);
  return out;
}

/** Every conversation with a retained record, in id order. */
function allConversations(store: Store): ConvId[] {
  const out: ConvId[] = [];
  let after: ConvId | undefined;
  for (;;) {
    const page = store.log.conversations(after, 10_000);
    out.push(...page);
    if (page.length < 10_000) return out;
    after = page[page.length - 1];
  }
}

/** Every state address under `prefix`, in order. */
function allStates(store: Store, prefix: string): string[] {
  const out: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = store.states.list(prefix, after, 10_000);
    out.push(...page);
    if (page.length < 10_000) return out;
    after = page[page.length - 1];
  }
}

/** Pass 1: every retained record's old offset, sorted. */
function collectOffsets(store: Store, convs: ConvId[]): OffsetMap {
  let total = 0;
  for (const c of convs) total += store.log.top(c)?.count ?? 0;
  let offsets = new Float64Array(Math.max(total, 16));
  let n = 0;
  for (const conv of convs) {
    let after = 0;
    for (;;) {
      const page = store.log.read({ conv, after, limit: PAGE, direction: 'forward' });
      for (const e of page) {
        if (n === offsets.length) { const bigger = new Float64Array(offsets.length * 2); bigger.set(offsets); offsets = bigger; }
        offsets[n++] = e.offset;
      }
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.offset;
    }
  }
  const sorted = offsets.subarray(0, n).sort();
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) throw new Error(`offset ${sorted[i]} is in two conversations: the data directory is damaged`);
  return new OffsetMap(sorted);
}

interface Cursor { conv: ConvId; page: LogEntry[]; i: number; done: boolean }

/** Pass 2: every retained record, in old offset order across conversations (a k-way merge, a page per conversation). */
function* recordsInOrder(store: Store, convs: ConvId[]): Generator<LogEntry> {
  const pageSize = Math.max(1, Math.min(PAGE, Math.floor(MERGE_BUDGET / Math.max(1, convs.length))));
  const fill = (c: Cursor): boolean => {
    const after = c.page.length > 0 ? c.page[c.page.length - 1]!.offset : 0;
    c.page = store.log.read({ conv: c.conv, after, limit: pageSize, direction: 'forward' });
    c.i = 0;
    c.done = c.page.length < pageSize;
    return c.page.length > 0;
  };
  const heap: Cursor[] = [];
  const key = (c: Cursor): number => c.page[c.i]!.offset;
  const up = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (key(heap[p]!) <= key(heap[i]!)) return;
      [heap[p], heap[i]] = [heap[i]!, heap[p]!];
      i = p;
    }
  };
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && key(heap[l]!) < key(heap[m]!)) m = l;
      if (r < heap.length && key(heap[r]!) < key(heap[m]!)) m = r;
      if (m === i) return;
      [heap[m], heap[i]] = [heap[i]!, heap[m]!];
      i = m;
    }
  };
  for (const conv of convs) {
    const c: Cursor = { conv, page: [], i: 0, done: false };
    if (fill(c)) { heap.push(c); up(heap.length - 1); }
  }
  while (heap.length > 0) {
    const c = heap[0]!;
    yield c.page[c.i]!;
    c.i++;
    if (c.i >= c.page.length && (c.done || !fill(c))) {
      const last = heap.pop()!;
      if (heap.length > 0) { heap[0] = last; down(0); }
    } else {
      down(0);
    }
  }
}

export interface ImportResult { records: number; memberships: number; states: number; positions: number; accounts: number; entries: number; lastSeq: number }

export async function importDataDir(t: ClusterTarget, dataDir: string, log: Logger): Promise<ImportResult> {
  if (!existsSync(join(dataDir, 'store', 'data.mdb'))) throw new Refusal(`${dataDir} is not an IMGC data directory (no store/data.mdb)`);
  const engine = await openEngine(t, log);
  let store: Store | undefined;
  try {
    await requireEmptyCluster(engine);
    // Only read; 'off': nothing here is written that would need a sync.
    store = await openStore({ backend: 'lmdb', dir: dataDir, fsync: 'off' });
    const writer = new LedgerWriter(engine.js, maxPayload(engine.nc));
    const out = new OpBatcher(writer, engine.names.node(IMPORT_NODE), IMPORT_NODE);

    const convs = allConversations(store);
    const map = collectOffsets(store, convs);
    log.info({ conversations: convs.length, records: map.size, lastOffset: store.stats().lastOffset }, 'import: records found');

    // 1. The records, in offset order.
    let records = 0;
    for (const e of recordsInOrder(store, convs)) {
      records++;
      if (map.exact(e.offset) !== records) throw new Error(`record ${e.offset} of ${e.conv} came out of order`);
      // At its rank, given: below the offsets later entries number from (cluster/entry.ts), since an
      // entry holds far fewer than RECORDS_PER_ENTRY records.
      await out.add({ t: 'append', entry: remapRecord(e, map), offset: records });
      if (records % 100_000 === 0) log.info({ records, of: map.size }, 'import: publishing records');
    }

    // The accounts: in conversation ids, group records and read receipts.
    const accounts = new Set<string>();
    for (const c of convs) {
      if (c.startsWith('d:')) for (const a of c.slice(2).split(':')) accounts.add(a);
      else if (c.startsWith('a:')) accounts.add(c.slice(2));
    }
    const states = new Map<string, string[]>();
    for (const prefix of STATE_PREFIXES) states.set(prefix, allStates(store, prefix));
    for (const address of states.get('group:')!) {
      const g = store.states.get(address) as { group?: unknown; manager?: unknown; founder?: unknown } | undefined;
      if (!g) continue;
      if (Array.isArray(g.group)) for (const a of g.group) if (typeof a === 'string') accounts.add(a);
      for (const a of [g.manager, g.founder]) if (typeof a === 'string' && a !== '') accounts.add(a);
    }
    for (const address of states.get('read:')!) accounts.add(address.slice(address.lastIndexOf(':') + 1));
    const sortedAccounts = [...accounts].sort();

    // 2. Memberships, as the data directory has them.
    let memberships = 0;
    for (const account of sortedAccounts) {
      for (const m of store.positions.memberships(account)) {
        await out.add({ t: 'join', account, conv: m.conv, since: map.atOrAfter(m.since) });
        memberships++;
      }
    }

    // 3. Actor states (no joined/left: the memberships are above).
    let stateCount = 0;
    for (const [prefix, addresses] of states) {
      for (const address of addresses) {
        let state = store.states.get(address);
        if (state === undefined) continue;
        if (prefix === 'read:' && typeof state === 'number') state = map.atOrBefore(state);
        const op: Op = { t: 'state', state: { t: 'state', address, state } };
        await out.add(op);
        stateCount++;
      }
    }
    await out.flush();
    const lastSeq = await writer.done();

    // 4. Positions, once the ledger holds everything they name.
    let positions = 0;
    const pending: Array<Promise<unknown>> = [];
    for (const account of sortedAccounts) {
      const p = store.positions.get(account);
      if (p === undefined) continue;
      const moved: AccountPositions = { delivered: map.atOrBefore(p.delivered), acked: map.atOrBefore(p.acked), ackMode: p.ackMode };
      pending.push(engine.positions.put(`a.${account}`, JSON.stringify(moved)));
      positions++;
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    return { records, memberships, states: stateCount, positions, accounts: accounts.size, entries: writer.entries, lastSeq };
  } finally {
    await store?.close();
    await engine.close();
  }
}
