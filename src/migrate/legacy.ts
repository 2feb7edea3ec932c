/**
 * Reader of the first service's `backup` file, which operators bring along when they move to this
 * service (format: ../shared/reference/w3os-wire.md, last section):
 *
 *   {"history":{<SS58>:[row…]},"group":{<GID>:<record>},"vertification":{<SS58>:<proof>}|null}
 *
 * The file was written by a service that validated little, so every entry is checked here and
 * a bad one is skipped (logged, counted) instead of failing the import: one broken group must not
 * cost every account its stored messages.
 */
import type { GroupRecord } from '../actors/group-state';
import * as fs from 'node:fs';
import { logger, type Logger } from '../log';
import { isSS58 } from '../protocol/ss58';

/** A group record of the first service: the same shape as ours (the wire's `detail` record). */
export type LegacyGroup = GroupRecord;

/** A stored chat message (direct, or group when `group` is set). */
export interface LegacyMessageRow {
  type: 'message';
  from: string;
  to: string;
  content: unknown;
  stamp: number;
  group?: string;
}

/** A stored notice; `content` is what the live notice carried as method and msg. */
export interface LegacyNoticeRow {
  type: 'notice';
  from: string;
  to: string;
  content: { method: Record<string, unknown>; data: unknown };
  stamp: number;
  group?: string;
}

export type LegacyRow = LegacyMessageRow | LegacyNoticeRow;

export interface LegacySkipped {
  groups: number;
  /** Group members or blocked accounts that were not SS58 addresses (dropped from their group). */
  members: number;
  accounts: number;
  rows: number;
  verifications: number;
}

export interface LegacyBackup {
  groups: Map<string, LegacyGroup>;
  /** Stored rows per account, in file order (the order they were stored). */
  history: Map<string, LegacyRow[]>;
  /** Verification proofs per account, as stored (opaque JSON objects). */
  verification: Map<string, Record<string, unknown>>;
  skipped: LegacySkipped;
}

/** Group ids were `GD` + 10 letters; accept a little more in case of hand edits, never arbitrary text. */
const GID_RE = /^GD[A-Za-z0-9]{1,62}$/;

export function isLegacyGroupId(s: unknown): s is string {
  return typeof s === 'string' && GID_RE.test(s);
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function isStamp(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/** Reads and validates a legacy backup file. Throws only when the file is unreadable or not a JSON object. */
export function readLegacyBackup(file: string, log: Logger = logger({ component: 'legacy' })): LegacyBackup {
  const text = fs.readFileSync(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`legacy backup ${file} is not JSON: ${(e as Error).message}`);
  }
  return parseLegacyBackup(json, log);
}

/** Validates the parsed content of a legacy backup file (see readLegacyBackup). */
export function parseLegacyBackup(json: unknown, log: Logger = logger({ component: 'legacy' })): LegacyBackup {
  if (!isObj(json)) throw new Error('legacy backup is not a JSON object');
  const out: LegacyBackup = {
    groups: new Map(),
    history: new Map(),
    verification: new Map(),
    skipped: { groups: 0, members: 0, accounts: 0, rows: 0, verifications: 0 },
  };

  const groups = json.group;
  if (isObj(groups)) {
    for (const [gid, rec] of Object.entries(groups)) {
      const g = parseGroup(gid, rec, out.skipped, log);
      if (g === undefined) out.skipped.groups++;
      else out.groups.set(gid, g);
    }
  } else if (groups !== undefined && groups !== null) {
    log.warn('legacy backup: "group" is not an object; no groups imported');
  }

  const history = json.history;
  if (isObj(history)) {
    for (const [acc, rows] of Object.entries(history)) {
      if (!isSS58(acc) || !Array.isArray(rows)) {
        log.warn({ account: acc.slice(0, 80) }, 'legacy backup: history entry skipped (bad account or rows not a list)');
        out.skipped.accounts++;
        continue;
      }
      const good: LegacyRow[] = [];
      rows.forEach((row, i) => {
        const r = parseRow(row, acc);
        if (typeof r === 'string') {
          log.warn({ account: acc, index: i, why: r }, 'legacy backup: history row skipped');
          out.skipped.rows++;
        } else {
          good.push(r);
        }
      });
      if (good.length > 0) out.history.set(acc, good);
    }
  } else if (history !== undefined && history !== null) {
    log.warn('legacy backup: "history" is not an object; no history imported');
  }

  const ver = json.vertification; // sic: the first service's spelling
  if (isObj(ver)) {
    for (const [acc, proof] of Object.entries(ver)) {
      if (!isSS58(acc) || !isObj(proof)) {
        log.warn({ account: acc.slice(0, 80) }, 'legacy backup: verification entry skipped');
        out.skipped.verifications++;
      } else {
        out.verification.set(acc, proof);
      }
    }
  }

  const s = out.skipped;
  const total = s.groups + s.members + s.accounts + s.rows + s.verifications;
  log.info(
    { groups: out.groups.size, accounts: out.history.size, verifications: out.verification.size, skipped: s },
    total > 0 ? 'legacy backup read, with invalid entries skipped' : 'legacy backup read',
  );
  return out;
}

/** A valid group, or undefined (logged) when the record cannot be trusted. */
function parseGroup(gid: string, rec: unknown, skipped: LegacySkipped, log: Logger): LegacyGroup | undefined {
  const bad = (why: string): undefined => {
    log.warn({ group: gid.slice(0, 80), why }, 'legacy backup: group skipped');
    return undefined;
  };
  if (!isLegacyGroupId(gid)) return bad('bad group id');
  if (!isObj(rec)) return bad('record is not an object');
  if (rec.id !== undefined && rec.id !== gid) return bad('record id differs from its key');
  if (!Array.isArray(rec.group)) return bad('member list missing');
  if (!isSS58(rec.manager)) return bad('bad manager');
  const founder = rec.founder === undefined ? rec.manager : rec.founder;
  if (!isSS58(founder)) return bad('bad founder');

  // Accounts that are not addresses are dropped from the lists, the group itself is kept.
  const accounts = (list: unknown, what: string): string[] => {
    const seen = new Set<string>();
    if (!Array.isArray(list)) return [];
    for (const a of list) {
      if (isSS58(a)) seen.add(a);
      else {
        skipped.members++;
        log.warn({ group: gid, what }, 'legacy backup: non-SS58 entry dropped from group');
      }
    }
    return [...seen];
  };
  const members = accounts(rec.group, 'member');
  if (members.length === 0) return bad('no valid member');
  const announce = isObj(rec.announce) ? rec.announce : {};
  const permit = isObj(rec.permit) ? rec.permit : {};
  const create = isStamp(rec.create) ? rec.create : 0;
  return {
    id: gid,
    group: members,
    status: typeof rec.status === 'number' && Number.isFinite(rec.status) ? rec.status : 1,
    create,
    update: isStamp(rec.update) ? rec.update : create,
    notice: Array.isArray(rec.notice) ? rec.notice : [],
    manager: rec.manager,
    founder,
    announce: {
      content: typeof announce.content === 'string' ? announce.content : '',
      expired: isStamp(announce.expired) ? announce.expired : 0,
    },
    // Defaults as the first service created groups: anyone may join, only the manager announces.
    permit: {
      free: typeof permit.free === 'boolean' ? permit.free : true,
      announce: typeof permit.announce === 'boolean' ? permit.announce : false,
    },
    block: accounts(rec.block, 'blocked'),
    nick: typeof rec.nick === 'string' ? rec.nick : '',
  };
}

/** A valid row, or the reason it is not one. */
function parseRow(row: unknown, account: string): LegacyRow | string {
  if (!isObj(row)) return 'not an object';
  if (!isStamp(row.stamp)) return 'bad stamp';
  // The first service wrote the placeholder "GROUP ID" on every group notice it stored but `create`:
  // a `group` that is not a group id names no group, and the row is imported without one.
  const group = isLegacyGroupId(row.group) ? row.group : undefined;
  if (row.type === 'notice') {
    // Notices may come from the service or a group rather than an account: only require strings.
    if (typeof row.from !== 'string' || typeof row.to !== 'string') return 'notice without from/to';
    const c = row.content;
    if (!isObj(c) || !isObj(c.method) || !('data' in c)) return 'notice content is not {method, data}';
    if (typeof c.method.act !== 'string') return 'notice method without act';
    const r: LegacyNoticeRow = { type: 'notice', from: row.from, to: row.to, content: { method: c.method, data: c.data }, stamp: row.stamp };
    if (group !== undefined) r.group = group;
    return r;
  }
  if (row.type !== undefined && row.type !== 'message') return `unknown row type ${JSON.stringify(row.type).slice(0, 40)}`;
  if (!isSS58(row.from)) return 'bad sender';
  // A group row may name the group as its receiver; the live frame named the member, i.e. the
  // account the row is stored for.
  const to = group !== undefined && row.to === group ? account : row.to;
  if (!isSS58(to)) return 'bad receiver';
  if (!('content' in row) || row.content === undefined) return 'message without content';
  const r: LegacyMessageRow = { type: 'message', from: row.from, to, content: row.content, stamp: row.stamp };
  if (group !== undefined) r.group = group;
  return r;
}

export interface LegacyMessageFrame {
  msg: unknown;
  from: string;
  to: string;
  group?: string;
  method: { cat: 'chat'; act: 'chat' } | { act: 'message'; cat: 'group' };
  /** Group messages only: the top-level `cat` the first service's live group frames carried. */
  cat?: 'group';
  type: 'message';
}

export interface LegacyNoticeFrame {
  type: 'notice';
  msg: unknown;
  method: Record<string, unknown>;
}

export type LegacyFrame = LegacyMessageFrame | LegacyNoticeFrame;

/**
 * The frame a client would have received live for a stored row (key order as the live frames,
 * so JSON.stringify of it is byte-compatible with what deployed clients parse).
 */
export function legacyRowToFrame(row: LegacyRow): LegacyFrame {
  if (row.type === 'notice') return { type: 'notice', msg: row.content.data, method: row.content.method };
  if (row.group !== undefined) {
    return { msg: row.content, from: row.from, group: row.group, to: row.to, method: { act: 'message', cat: 'group' }, cat: 'group', type: 'message' };
  }
  return { msg: row.content, from: row.from, to: row.to, method: { cat: 'chat', act: 'chat' }, type: 'message' };
}
