/**
 * The store check: walks every value of every database of an LMDB store and verifies it as the
 * reads do (its checksum over key and payload, then its layout), without changing anything. It
 * opens the environment read-only, so it may run beside the service (LMDB readers do not block the
 * writer). What it reports names each damaged record as the service's log lines do.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { open, type Database } from 'lmdb';
import { decodeState, logCodec, numberCodec, positionsCodec, seeds, textCodec, topCodec } from './codecs';
import { FORMAT } from './seal';
import { DB_NAMES, openDbs, type DbName } from './schema';

export interface CheckReport {
  /** The environment checked (`<dir>/store`). */
  store: string;
  /** Values verified. */
  checked: number;
  /** Damaged values: the database and the record (conversation and offset, address, account). */
  damaged: { db: DbName; where: string }[];
  /** Databases whose walk LMDB stopped (a corrupt page), with its message. */
  unreadable: { db: DbName; error: string }[];
}

/** Why a store cannot be checked at all (no store there, the format before checksums). */
export class CheckRefused extends Error {}

type AnyKey = string | (string | number)[];

/** Whether the value of `key` in `db` holds (its checksum and its layout). */
const VERIFY: Record<DbName, (key: AnyKey, v: Buffer) => boolean> = {
  log: (k, v) => { const [conv, offset] = k as [string, number]; return logCodec.decode(v, seeds.log(conv, offset)) !== undefined; },
  convs: (k, v) => topCodec.decode(v, seeds.convs(k as string)) !== undefined,
  mids: (k, v) => { const [conv, from, mid] = k as [string, string, string]; return numberCodec.decode(v, seeds.mids(conv, from, mid)) !== undefined; },
  positions: (k, v) => positionsCodec.decode(v, seeds.positions(k as string)) !== undefined,
  members: (k, v) => { const [account, conv] = k as [string, string]; return numberCodec.decode(v, seeds.members(account, conv)) !== undefined; },
  states: (k, v) => decodeState(v, seeds.states(k as string)) !== undefined,
  meta: (k, v) => {
    if (k === 'epoch') return textCodec.decode(v, seeds.meta('epoch')) !== undefined;
    if (k === 'lastOffset' || k === 'format') return numberCodec.decode(v, seeds.meta(k)) !== undefined;
    return true; // no record (what the space probe writes and removes)
  },
};

/** A record's place as the service's log lines name it. */
export function placeOf(db: DbName, key: AnyKey): string {
  if (Array.isArray(key)) return db === 'log' ? `${String(key[0])} offset ${String(key[1])}` : key.map(String).join(' ');
  return String(key);
}

export function checkStore(dataDir: string): CheckReport {
  const envDir = path.join(dataDir, 'store');
  if (!existsSync(path.join(envDir, 'data.mdb'))) throw new CheckRefused(`no store at ${envDir} (no data.mdb)`);
  const root = open({ path: envDir, maxDbs: 8, readOnly: true });
  try {
    const dbs = openDbs(root);
    const format = dbs.meta.get('format');
    if (format === undefined) throw new CheckRefused(`the store ${envDir} is of the format before checksums: start the service once to migrate it, then check it`);
    const report: CheckReport = { store: envDir, checked: 0, damaged: [], unreadable: [] };
    if (numberCodec.decode(format, seeds.meta('format')) !== FORMAT) report.damaged.push({ db: 'meta', where: 'format' });
    for (const name of DB_NAMES) walk(name, dbs[name] as unknown as Database<Buffer, AnyKey>, report);
    return report;
  } finally {
    void root.close();
  }
}

function walk(name: DbName, db: Database<Buffer, AnyKey>, report: CheckReport): void {
  try {
    for (const { key, value } of db.getRange({})) {
      report.checked++;
      let ok: boolean;
      try {
        ok = VERIFY[name](key, value);
      } catch {
        ok = false; // a key a flipped bit made of another shape
      }
      if (!ok) report.damaged.push({ db: name, where: placeOf(name, key) });
    }
  } catch (e) {
    report.unreadable.push({ db: name, error: e instanceof Error ? e.message : String(e) });
  }
}
