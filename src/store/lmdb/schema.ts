/**
 * The on-disk layout of the LMDB store, in one place so that every port implementation reads and
 * writes the same format: one environment, seven named databases, keys in lmdb-js ordered-binary
 * encoding (arrays compare element by element), so range reads come out in order:
 *
 * - log:       [conv, offset]      → [at, from, mid|null, head, tail]
 * - convs:     conv                → ConvTop {first, last, count}
 * - mids:      [conv, from, mid]   → offset
 * - positions: account             → AccountPositions
 * - members:   [account, conv]     → since
 * - states:    address             → JSON value
 * - meta:      'epoch' | 'lastOffset'
 */
import type { Database, RootDatabase } from 'lmdb';
import type { AccountPositions, ConvId, ConvTop } from '../ports';

export type LogValue = [at: number, from: string | null, mid: string | null, head: string, tail: string];
export type LogKey = [ConvId, number];
export type MidKey = [ConvId, string, string];
export type MemberKey = [string, ConvId];

export interface Dbs {
  log: Database<LogValue, LogKey>;
  convs: Database<ConvTop, ConvId>;
  mids: Database<number, MidKey>;
  positions: Database<AccountPositions, string>;
  members: Database<number, MemberKey>;
  states: Database<unknown, string>;
  meta: Database<string | number, string>;
}

/** Above every offset: the open end of a range within one conversation. */
export const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
/** Above every conversation id (they are ASCII: `d:`, `g:`, `a:`): the open end of an account's memberships. */
export const MAX_CONV = '\uffff';

/** Opens (creating if needed) the seven databases of the environment `root`. */
export function openDbs(root: RootDatabase): Dbs {
  return {
    log: root.openDB<LogValue, LogKey>({ name: 'log', encoding: 'msgpack' }),
    convs: root.openDB<ConvTop, ConvId>({ name: 'convs', encoding: 'msgpack' }),
    mids: root.openDB<number, MidKey>({ name: 'mids', encoding: 'msgpack' }),
    positions: root.openDB<AccountPositions, string>({ name: 'positions', encoding: 'msgpack' }),
    members: root.openDB<number, MemberKey>({ name: 'members', encoding: 'msgpack' }),
    states: root.openDB<unknown, string>({ name: 'states', encoding: 'json' }),
    meta: root.openDB<string | number, string>({ name: 'meta', encoding: 'msgpack' }),
  };
}
