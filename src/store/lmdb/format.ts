/**
 * The migration of a store of the format before (values as msgpack, states as JSON text, no
 * checksums) to the sealed format (seal.ts), run once at open, before anything else reads it.
 *
 * Crash-safe and idempotent: values are rewritten in batches, one transaction each, and a value
 * already sealed is left alone, so a migration killed midway converts the rest at the next open;
 * `format` goes into meta last, in its own transaction, once every value is sealed. A value of the
 * old format that does not decode (damaged before it could be checked) is left as it is: it then
 * fails its checksum and is reported like any damaged record.
 */
import type { Database, RootDatabase } from 'lmdb';
import { logger } from '../../log';
import { logCodec, numberCodec, positionsCodec, seeds, textCodec, topCodec } from './codecs';
import { FORMAT, isSealed } from './seal';
import { DB_NAMES, type DbName, type Dbs, type LogValue } from './schema';

/** Values rewritten per transaction. */
const BATCH = 2000;

type AnyKey = string | (string | number)[];

/**
 * A value of the old format (as lmdb-js decoded it) sealed anew; undefined if it is not what the
 * database holds (damaged); 'keep' for a value that is no record (a leftover of the probe in meta).
 */
type Convert = (key: AnyKey, old: unknown) => Buffer | undefined | 'keep';

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isStrOrNull = (x: unknown): x is string | null => x === null || typeof x === 'string';

const CONVERT: Record<DbName, Convert> = {
  log: (key, v) => {
    const [conv, offset] = key as [string, number];
    if (!Array.isArray(v) || v.length !== 5 || !isNum(v[0]) || !isStrOrNull(v[1]) || !isStrOrNull(v[2]) || typeof v[3] !== 'string' || typeof v[4] !== 'string') return undefined;
    return logCodec.encode(v as LogValue, seeds.log(conv, offset));
  },
  convs: (key, v) => {
    const t = v as { first?: unknown; last?: unknown; count?: unknown } | null;
    if (t === null || typeof t !== 'object' || !isNum(t.first) || !isNum(t.last) || !isNum(t.count)) return undefined;
    return topCodec.encode({ first: t.first, last: t.last, count: t.count }, seeds.convs(key as string));
  },
  mids: (key, v) => {
    const [conv, from, mid] = key as [string, string, string];
    return isNum(v) ? numberCodec.encode(v, seeds.mids(conv, from, mid)) : undefined;
  },
  positions: (key, v) => {
    const p = v as { delivered?: unknown; acked?: unknown; ackMode?: unknown } | null;
    if (p === null || typeof p !== 'object' || !isNum(p.delivered) || !isNum(p.acked) || typeof p.ackMode !== 'boolean') return undefined;
    return positionsCodec.encode({ delivered: p.delivered, acked: p.acked, ackMode: p.ackMode }, seeds.positions(key as string));
  },
  members: (key, v) => {
    const [account, conv] = key as [string, string];
    return isNum(v) ? numberCodec.encode(v, seeds.members(account, conv)) : undefined;
  },
  // The old states database held JSON text: kept as it is, once it parses.
  states: (key, v) => (v === undefined ? undefined : textCodec.encode(JSON.stringify(v), seeds.states(key as string))),
  meta: (key, v) => {
    if (key === 'epoch' && typeof v === 'string') return textCodec.encode(v, seeds.meta('epoch'));
    if (key === 'lastOffset' && isNum(v)) return numberCodec.encode(v, seeds.meta('lastOffset'));
    return key === 'epoch' || key === 'lastOffset' ? undefined : 'keep';
  },
};

export interface MigrateOptions {
  /** Values per transaction (tests make it small). */
  batch?: number;
  /** Stop after this many transactions, as if killed (tests only). */
  stopAfter?: number;
}

/** Migrates the store to the sealed format unless meta says it has it; true if it ran to the end. */
export function migrateFormat(root: RootDatabase, dbs: Dbs, envDir: string, opts: MigrateOptions = {}): boolean {
  if (formatOf(dbs) === FORMAT) return true;
  const log = logger({ mod: 'lmdb-store' });
  const batch = opts.batch ?? BATCH;
  let budget = opts.stopAfter ?? Infinity;
  const done = { sealed: 0, undecodable: 0, transactions: 0 };
  for (const name of DB_NAMES) {
    const old = root.openDB<unknown, AnyKey>({ name, encoding: name === 'states' ? 'json' : 'msgpack' });
    const raw = dbs[name] as unknown as Database<Buffer, AnyKey>;
    let after: AnyKey | undefined;
    for (;;) {
      if (budget-- <= 0) return false;
      const found = root.transactionSync(() => migrateBatch(name, raw, old, after, batch, done));
      done.transactions++;
      if (found === undefined) break;
      after = found;
    }
  }
  root.transactionSync(() => dbs.meta.putSync('format', numberCodec.encode(FORMAT, seeds.meta('format'))));
  if (done.sealed > 0 || done.undecodable > 0) {
    log.info({ store: envDir, ...done }, 'store migrated to the checksummed format');
  }
  if (done.undecodable > 0) log.error({ store: envDir, undecodable: done.undecodable }, 'values of the old format that do not decode were left as they are: they read as damaged (run the store check)');
  return true;
}

/** The format meta names (undefined: the format before, or a damaged mark, which migrates again: idempotent). */
function formatOf(dbs: Dbs): number | undefined {
  const raw = dbs.meta.get('format');
  return raw === undefined ? undefined : numberCodec.decode(raw, seeds.meta('format'));
}

/**
 * Inside a transaction: seals up to `batch` values of `name` after the key `after`; answers the
 * last key it looked at, or undefined when the database is done.
 */
function migrateBatch(name: DbName, raw: Database<Buffer, AnyKey>, old: Database<unknown, AnyKey>, after: AnyKey | undefined, batch: number,
  done: { sealed: number; undecodable: number }): AnyKey | undefined {
  const range = after === undefined ? raw.getRange({ limit: batch }) : raw.getRange({ start: after, offset: 1, limit: batch });
  // Collected first: a cursor is not walked while the tree under it changes.
  const entries = [...range].map(({ key, value }) => ({ key, value }));
  for (const { key, value } of entries) {
    if (isSealed(value)) continue;
    let sealed: Buffer | undefined | 'keep';
    try {
      sealed = CONVERT[name](key, old.get(key));
    } catch {
      sealed = undefined;
    }
    if (sealed === 'keep') continue;
    if (sealed === undefined) { done.undecodable++; continue; }
    raw.putSync(key, sealed);
    done.sealed++;
  }
  return entries.length < batch ? undefined : entries[entries.length - 1]!.key;
}
