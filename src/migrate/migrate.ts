/**
 * Moves a data directory written by the journal-and-checkpoint version (v1: `meta.json`, `pNN/`,
 * `accounts/`; see v1/read.ts) into the store, once, through the store's ports only:
 * - each group's record goes to `group:<GID>` and each member joins `g:<GID>` from the store's
 *   next offset (the group's log starts empty: there was no group log in v1);
 * - the verifier's book goes to `verify:book`;
 * - each inbox's kept messages are appended, in seq order, to the account's own log `a:<account>`,
 *   and its positions are set just before them (ack mode kept), so exactly those are pending;
 * then the v1 files are moved aside into `<data>/migrated-v1/` for the operator to inspect or delete.
 *
 * Crash safety. The store gives no transaction across the whole migration (a read commits what is
 * queued), so a marker alone, written with the data, could not tell a partial run from none. The
 * marker `migration:v1` is therefore written, and made durable, *before* any data:
 * `{done:false, since}`, `since` being the first offset the migration may use. Every later write
 * is idempotent given that marker: states and positions are replaced whole, memberships re-joined
 * at the same `since`, and the only non-idempotent write, appending messages, skips what a partial
 * run already appended: an account's records at offsets >= `since` in its own log can only come
 * from an earlier run of this migration (nothing else writes to the store before it ends, and the
 * store commits in order, so they are a prefix of the account's messages). Once everything is
 * flushed the marker becomes `{done:true, …counts}` (flushed too), and only then are the v1 files
 * renamed, `meta.json` last: a crash during the renames leaves `meta.json` and a done marker, and
 * the next start only finishes the renames. A restart after that finds no `meta.json` and does nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { logger } from '../log';
import { fsyncDir } from '../store/fsutil';
import { accountConv, groupConv, type Store } from '../store/ports';
import { VERIFY_ADDRESS } from '../actors/verifier';
import { META_FILE } from './v1/layout';
import { ACCOUNTS_DIR, GROUP_PREFIX, isV1DataDir, readV1, type V1Data } from './v1/read';

/** Where the v1 files go once migrated. */
export const MIGRATED_DIR = 'migrated-v1';
/** The actor-state key of the migration's marker. */
export const MIGRATION_MARKER = 'migration:v1';

export interface MigrationCounts { groups: number; accounts: number; messages: number }

export interface MigrationMarker extends Partial<MigrationCounts> {
  done: boolean;
  /** First offset the migration may have used; memberships start here. */
  since: number;
  at?: number;
}

/**
 * Migrates `dataDir` into `store` when it holds the v1 layout; returns the counts (null when there
 * was nothing to migrate). Safe to call on every start, and again after a crash at any point.
 */
export async function migrateDataDir(dataDir: string, store: Store): Promise<MigrationCounts | null> {
  if (!isV1DataDir(dataDir)) return null;
  const log = logger({ part: 'migrate' });
  let marker = store.states.get(MIGRATION_MARKER) as MigrationMarker | undefined;
  let resumed = false;
  if (marker?.done !== true) {
    const started = Date.now();
    const data = await readV1(dataDir, log);
    resumed = marker !== undefined;
    if (marker === undefined) {
      marker = { done: false, since: store.stats().lastOffset + 1 };
      store.states.put(MIGRATION_MARKER, marker);
      await store.flush();
    } else {
      log.warn({ since: marker.since }, 'an earlier v1 migration was interrupted; resuming it');
    }
    const counts = write(store, data, marker.since, resumed);
    marker = { done: true, since: marker.since, ...counts, at: Date.now() };
    store.states.put(MIGRATION_MARKER, marker);
    await store.flush();
    log.debug({ ms: Date.now() - started }, 'v1 data written to the store');
  }
  moveAside(dataDir);
  const counts: MigrationCounts = { groups: marker.groups ?? 0, accounts: marker.accounts ?? 0, messages: marker.messages ?? 0 };
  log.info({ ...counts, resumed, movedTo: path.join(dataDir, MIGRATED_DIR) }, 'v1 data directory migrated into the store');
  return counts;
}

function write(store: Store, data: V1Data, since: number, resumed: boolean): MigrationCounts {
  for (const [id, record] of data.groups) {
    store.states.put(GROUP_PREFIX + id, record);
    for (const member of record.group) store.positions.join(member, groupConv(id), since);
  }
  if (data.verifier !== undefined) store.states.put(VERIFY_ADDRESS, data.verifier);

  let last = store.stats().lastOffset;
  let accounts = 0;
  let messages = 0;
  for (const [account, inbox] of data.inboxes) {
    if (inbox.stored.length === 0 && !inbox.ackMode) continue;
    const conv = accountConv(account);
    const stored = [...inbox.stored].sort((a, b) => a.seq - b.seq);
    // Only a resumed run can find its own earlier appends (reading commits the queued writes, so
    // a first run does not read at all).
    const already = resumed && stored.length > 0
      ? store.log.read({ conv, after: since - 1, limit: stored.length, direction: 'forward' })
      : [];
    let base = already.length > 0 ? already[0]!.offset - 1 : last;
    for (let i = already.length; i < stored.length; i++) {
      const m = stored[i]!;
      const e = store.log.append({ conv, at: m.at, from: null, head: m.head, tail: m.tail });
      if (i === 0) base = e.offset - 1;
      last = e.offset;
    }
    store.positions.set(account, { delivered: base, acked: base, ackMode: inbox.ackMode });
    accounts++;
    messages += stored.length;
  }
  return { groups: data.groups.size, accounts, messages };
}

/** Renames the v1 files into `<data>/migrated-v1/`, `meta.json` last; what is already there stays. */
function moveAside(dataDir: string): void {
  const dest = path.join(dataDir, MIGRATED_DIR);
  fs.mkdirSync(dest, { recursive: true });
  const names = fs.readdirSync(dataDir).filter((n) => /^p\d+$/.test(n) || n === ACCOUNTS_DIR);
  for (const name of [...names.sort(), META_FILE]) {
    const from = path.join(dataDir, name);
    if (!fs.existsSync(from)) continue;
    const to = path.join(dest, name);
    if (fs.existsSync(to)) throw new Error(`cannot move ${from} aside: ${to} exists already (remove or rename ${dest} first)`);
    fs.renameSync(from, to);
  }
  fsyncDir(dest);
  fsyncDir(dataDir);
}
