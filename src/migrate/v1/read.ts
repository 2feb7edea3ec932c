/**
 * Reads a data directory of the journal-and-checkpoint version the way that version restored it:
 * per partition the newest valid snapshot (a map from actor address to state), then the journal
 * records after it (each a list of `[address, event]` of one batch), applied in order with the
 * actors' own apply functions.
 *
 *   <data>/meta.json, <data>/pNN/         the shards: `group:<GID>` and `verify:book`
 *   <data>/pNN/cold/<address>.json        groups evicted from memory
 *   <data>/accounts/meta.json, pNN/       the inboxes: `inbox:<account>`
 *
 * Cold files are read as the old shard read them: only for a group that is not in memory (not in
 * the snapshot, not created by the journal so far). Group events are idempotent, so journal
 * records older than a cold file, applied over it, give the same state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../log';
import { applyGroup, type GroupEvent, type GroupRecord } from '../../actors/group-state';
import { Verifier, VERIFY_ADDRESS, type VerifierEvent, type VerifierState } from '../../actors/verifier';
import { isNotFound } from '../../store/fsutil';
import { applyInbox, emptyInbox, type InboxEvent, type InboxState } from './inbox-state';
import { LayoutError, META_FILE, partitionDir, readMeta } from './layout';
import { PartitionStore } from './partition';

/** Subdirectory of the inboxes' own layout. */
export const ACCOUNTS_DIR = 'accounts';
export const COLD_DIR = 'cold';
export const GROUP_PREFIX = 'group:';
export const INBOX_PREFIX = 'inbox:';

export interface V1Data {
  /** Live groups by id (destroyed ones are absent). */
  groups: Map<string, GroupRecord>;
  verifier: VerifierState | undefined;
  /** Inboxes by account. */
  inboxes: Map<string, InboxState>;
}

type Entry = [string, unknown];

/** Whether `dataDir` holds the v1 layout (its meta.json). */
export function isV1DataDir(dataDir: string): boolean {
  return fs.existsSync(path.join(dataDir, META_FILE));
}

/** Everything a v1 data directory holds, as that version would have restored it. */
export async function readV1(dataDir: string, log: Logger): Promise<V1Data> {
  const shards = await readPartitions(dataDir, log);
  const groups = new Map<string, GroupRecord>();
  const destroyed = new Set<string>();
  let verifier: Verifier | undefined;
  for (const [address, state] of Object.entries(shards.snapshot)) {
    if (address.startsWith(GROUP_PREFIX)) groups.set(address.slice(GROUP_PREFIX.length), state as GroupRecord);
    else if (address === VERIFY_ADDRESS) verifier = plainVerifier(state as VerifierState);
    else log.warn({ address }, 'v1 snapshot: unknown actor address skipped');
  }
  const cold = readCold(dataDir, meta(dataDir).partitions, log);
  for (const [address, ev] of shards.records) {
    if (address === VERIFY_ADDRESS) {
      (verifier ??= plainVerifier(undefined)).apply(ev as VerifierEvent);
    } else if (address.startsWith(GROUP_PREFIX)) {
      const id = address.slice(GROUP_PREFIX.length);
      let g = groups.get(id);
      if (g === undefined && !destroyed.has(id)) g = cold.get(id);
      const next = applyGroup(g, ev as GroupEvent);
      if (next) { groups.set(id, next); destroyed.delete(id); }
      else { groups.delete(id); destroyed.add(id); }
      // Read once: from now on the group is "in memory" (as the old shard held it).
      cold.delete(id);
    } else {
      log.warn({ address }, 'v1 journal: unknown actor address skipped');
    }
  }
  // Groups evicted and not touched since: the cold file is their state.
  for (const [id, g] of cold) if (!groups.has(id) && !destroyed.has(id)) groups.set(id, g);

  const inboxes = new Map<string, InboxState>();
  const accountsDir = path.join(dataDir, ACCOUNTS_DIR);
  if (isV1DataDir(accountsDir)) {
    const acc = await readPartitions(accountsDir, log);
    for (const [address, state] of Object.entries(acc.snapshot)) {
      if (address.startsWith(INBOX_PREFIX)) inboxes.set(address.slice(INBOX_PREFIX.length), { ...emptyInbox(), ...(state as Partial<InboxState>) });
    }
    for (const [address, ev] of acc.records) {
      if (!address.startsWith(INBOX_PREFIX)) continue;
      const account = address.slice(INBOX_PREFIX.length);
      let s = inboxes.get(account);
      if (!s) { s = emptyInbox(); inboxes.set(account, s); }
      applyInbox(s, ev as InboxEvent);
    }
  }
  return { groups, verifier: verifier?.state(), inboxes };
}

function meta(dir: string): { partitions: number } {
  const m = readMeta(dir);
  if (m === null) throw new LayoutError(`${dir} has no ${META_FILE}`);
  return m;
}

/** Every partition of `dir`: the snapshots merged, and the journal entries in order per partition. */
async function readPartitions(dir: string, log: Logger): Promise<{ snapshot: Record<string, unknown>; records: Entry[] }> {
  const { partitions } = meta(dir);
  const snapshot: Record<string, unknown> = {};
  const records: Entry[] = [];
  for (let p = 0; p < partitions; p++) {
    // A partition directory that was never created holds nothing (the old version made them lazily too).
    if (!fs.existsSync(partitionDir(dir, p))) continue;
    const r = await PartitionStore.open({ dir, partition: p, fsync: 'off' });
    await r.store.close();
    if (r.snapshot) Object.assign(snapshot, r.snapshot as Record<string, unknown>);
    for (const rec of r.records) {
      if (!Array.isArray(rec)) { log.warn({ dir, partition: p }, 'v1 journal: record is not a batch of entries; skipped'); continue; }
      for (const e of rec as unknown[]) {
        if (Array.isArray(e) && typeof e[0] === 'string') records.push([e[0], e[1]]);
      }
    }
  }
  return { snapshot, records };
}

/** The cold group files of every partition, by group id. */
function readCold(dataDir: string, partitions: number, log: Logger): Map<string, GroupRecord> {
  const out = new Map<string, GroupRecord>();
  for (let p = 0; p < partitions; p++) {
    const dir = path.join(partitionDir(dataDir, p), COLD_DIR);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (e) {
      if (isNotFound(e)) continue;
      throw e;
    }
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      let address: string;
      try {
        address = decodeURIComponent(name.slice(0, -'.json'.length));
      } catch {
        log.warn({ file: name }, 'v1 cold file: bad name; skipped');
        continue;
      }
      if (!address.startsWith(GROUP_PREFIX)) continue;
      try {
        out.set(address.slice(GROUP_PREFIX.length), JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as GroupRecord);
      } catch (err) {
        // An atomic write leaves a whole file or none: a bad one was not written by the old version.
        log.warn({ err, file: path.join(dir, name) }, 'v1 cold file unreadable; skipped');
      }
    }
  }
  return out;
}

/** The verifier without a live book: events are kept as plain records, as the old shard did when verification was off. */
function plainVerifier(state: VerifierState | undefined): Verifier {
  return new Verifier({ target: undefined, ttlMs: 0 }, state);
}
