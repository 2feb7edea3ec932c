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
 * - states:    address             → JSON text
 * - meta:      'epoch' (text) | 'lastOffset' | 'format' (numbers)
 *
 * Every value is stored sealed with a checksum over its key and payload (seal.ts; the payload
 * layouts and key seeds are in codecs.ts), so the databases hold raw bytes ('binary'). Stores
 * of the format before (msgpack and JSON values, no 'format' in meta) are migrated at open
 * (format.ts).
 */
import type { Database, Key, RootDatabase } from 'lmdb';
import type { ConvId } from '../ports';

export type LogValue = [at: number, from: string | null, mid: string | null, head: string, tail: string];
export type LogKey = [ConvId, number];
export type MidKey = [ConvId, string, string];
export type MemberKey = [string, ConvId];

export interface Dbs {
  log: Database<Buffer, LogKey>;
  convs: Database<Buffer, ConvId>;
  mids: Database<Buffer, MidKey>;
  positions: Database<Buffer, string>;
  members: Database<Buffer, MemberKey>;
  states: Database<Buffer, string>;
  meta: Database<Buffer, string>;
}

export type DbName = keyof Dbs;
export const DB_NAMES: readonly DbName[] = ['log', 'convs', 'mids', 'positions', 'members', 'states', 'meta'];

/** Above every offset: the open end of a range within one conversation. */
export const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
/** Above every conversation id (they are ASCII: `d:`, `g:`, `a:`): the open end of an account's memberships. */
export const MAX_CONV = '\uffff';

/** Opens (creating if needed) the seven databases of the environment `root`, as raw bytes. */
export function openDbs(root: RootDatabase): Dbs {
  const open = <K extends Key>(name: DbName): Database<Buffer, K> => root.openDB<Buffer, K>({ name, encoding: 'binary' });
  return {
    log: open('log'), convs: open('convs'), mids: open('mids'), positions: open('positions'),
    members: open('members'), states: open('states'), meta: open('meta'),
  };
}
