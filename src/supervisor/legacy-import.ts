/**
 * Import of the first service's `backup` file: its groups become group actors, its stored history
 * goes to each account's own log (delivered at its next sign-in), and its verification
 * records go to the verification book. A marker in the data directory, holding the file's digest,
 * makes the import happen once however often the server restarts with the same flag.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Template } from '../protocol/frames';
import { groupAddress } from '../actors/address';
import type { StateOut, VerifyCall } from '../actors/envelopes';
import type { GroupRecord } from '../actors/group-state';
import { groupConv, type Store } from '../store/ports';
import { legacyRowToFrame, readLegacyBackup } from '../migrate/legacy';
import { logger } from '../log';
import type { Proof } from '../chain/registrations';

const MARKER = 'legacy-import.json';

export interface ImportTarget {
  importGroup(record: GroupRecord): void;
  importHistory(account: string, frames: Template[]): void;
  importVerification?(account: string, proof: Record<string, unknown>): void;
  /** Resolves once everything handed over so far is durable. */
  settle(): Promise<void>;
}

/** Where an import lands: the store's states, the delivery actor, the verification actor. */
export interface ImportInto {
  store: Pick<Store, 'states'>;
  delivery: { state(s: StateOut): void; importOwn(account: string, tpl: Template, at: number): void };
  verify(call: VerifyCall): void;
  /** Resolves once everything handed over so far is decided and durable. */
  settle(): Promise<void>;
}

export function importTarget(into: ImportInto, now = Date.now()): ImportTarget {
  return {
    // Imported groups never overwrite a live one.
    importGroup: (group) => {
      const address = groupAddress(group.id);
      if (into.store.states.get(address) === undefined) into.delivery.state({ t: 'state', address, state: group, conv: groupConv(group.id), joined: group.group });
    },
    importHistory: (account, frames) => { for (const tpl of frames) into.delivery.importOwn(account, tpl, now); },
    importVerification: (account, proof) => into.verify({ t: 'verify', op: 'import', proof: legacyProof(account, proof) }),
    settle: () => into.settle(),
  };
}

/** A stored frame as a template: the recipient and sequence number are added when it is sent. */
export function frameTemplate(frame: Record<string, unknown>): Template {
  const { to: _to, ...rest } = frame;
  const json = JSON.stringify(rest);
  return { head: json.slice(0, -1) + (json === '{}' ? '' : ',') + '"to":', tail: '' };
}

export async function importLegacy(file: string, dataDir: string, target: ImportTarget): Promise<{ groups: number; rows: number; verifications: number } | null> {
  const log = logger({ part: 'legacy-import' });
  const digest = createHash('sha256').update(readFileSync(file)).digest('hex');
  const marker = join(dataDir, MARKER);
  if (existsSync(marker) && (JSON.parse(readFileSync(marker, 'utf8')) as { sha256?: string }).sha256 === digest) {
    log.info({ file }, 'legacy backup already imported');
    return null;
  }
  const legacy = readLegacyBackup(file, log);
  for (const g of legacy.groups.values()) target.importGroup(g);
  let rows = 0;
  for (const [account, list] of legacy.history) {
    const frames = list.map((row) => frameTemplate(legacyRowToFrame(row) as unknown as Record<string, unknown>));
    target.importHistory(account, frames);
    rows += list.length;
  }
  for (const [account, proof] of legacy.verification) target.importVerification?.(account, proof);
  await target.settle();
  const summary = { groups: legacy.groups.size, rows, verifications: legacy.verification.size };
  writeFileSync(marker, JSON.stringify({ file, sha256: digest, at: Date.now(), ...summary, skipped: legacy.skipped }));
  log.info({ file, ...summary, skipped: legacy.skipped }, 'legacy backup imported');
  return summary;
}

/** A proof record of the first service, in the shape of ours (its fields were never fixed; take what is there). */
export function legacyProof(account: string, p: Record<string, unknown>): Proof {
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : Number(v) || 0);
  return {
    account,
    amount: String(p.amount ?? '0'),
    blockNumber: num(p.block ?? p.blockNumber),
    blockHash: String(p.hash ?? p.blockHash ?? ''),
    eventIndex: num(p.index ?? p.eventIndex),
    at: num(p.stamp ?? p.at) || Date.now(),
  };
}
