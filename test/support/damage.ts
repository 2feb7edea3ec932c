/**
 * Damage on disk for the checksum tests: flipping one bit inside every copy of a known text in a
 * store's data.mdb (LMDB copies pages on write, so older copies of a record may sit on free pages;
 * flipping them too is harmless), and a writer of the store format before checksums.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';

/** The start of a sealed value (its marker and format): a key followed by it is a key of that value's record. */
export const SEALED = Buffer.from([0xc1, 0x02]);

/** Flips the lowest bit of the byte `at` bytes into every occurrence of `text`; answers how many. */
export function flipInStore(dataDir: string, text: string | Buffer, at = 0): number {
  const file = join(dataDir, 'store', 'data.mdb');
  const bytes = readFileSync(file);
  const needle = typeof text === 'string' ? Buffer.from(text) : text;
  let n = 0;
  for (let i = bytes.indexOf(needle); i >= 0; i = bytes.indexOf(needle, i + 1)) {
    bytes[i + at] = bytes[i + at]! ^ 1;
    n++;
  }
  writeFileSync(file, bytes);
  return n;
}

/** Flips a bit in the checksum of the value stored under the string key `key` (found as the key followed by a sealed value). */
export function flipValueOf(dataDir: string, key: string): number {
  return flipInStore(dataDir, Buffer.concat([Buffer.from(key), SEALED]), Buffer.byteLength(key) + 3);
}

export interface OldRecord { conv: string; offset: number; at: number; from: string | null; mid: string | null; head: string; tail: string }

/**
 * Writes a store as the service wrote it before checksums: the same seven tables, values in
 * msgpack (states as JSON), no `format` in meta.
 */
export async function writeOldStore(dataDir: string, d: {
  records: OldRecord[];
  positions: Record<string, { delivered: number; acked: number; ackMode: boolean }>;
  members: [account: string, conv: string, since: number][];
  states: Record<string, unknown>;
  epoch: string;
}): Promise<void> {
  const root = open({ path: join(dataDir, 'store'), maxDbs: 8 });
  const db = (name: string, encoding: 'msgpack' | 'json' = 'msgpack') => root.openDB<unknown, any>({ name, encoding });
  const log = db('log'), convs = db('convs'), mids = db('mids'), positions = db('positions'), members = db('members');
  const states = db('states', 'json'), meta = db('meta');
  root.transactionSync(() => {
    const tops = new Map<string, { first: number; last: number; count: number }>();
    for (const r of d.records) {
      log.putSync([r.conv, r.offset], [r.at, r.from, r.mid, r.head, r.tail]);
      if (r.from !== null && r.mid !== null) mids.putSync([r.conv, r.from, r.mid], r.offset);
      const t = tops.get(r.conv);
      tops.set(r.conv, t === undefined ? { first: r.offset, last: r.offset, count: 1 } : { first: t.first, last: r.offset, count: t.count + 1 });
    }
    for (const [conv, t] of tops) convs.putSync(conv, t);
    for (const [a, p] of Object.entries(d.positions)) positions.putSync(a, p);
    for (const [a, conv, since] of d.members) members.putSync([a, conv], since);
    for (const [address, s] of Object.entries(d.states)) states.putSync(address, s);
    meta.putSync('epoch', d.epoch);
    meta.putSync('lastOffset', Math.max(0, ...d.records.map((r) => r.offset)));
  });
  await root.close();
}
