/**
 * A group's state and its events. The state is the record `detail` returns (plain JSON);
 * `applyGroup` is the one place it changes, so a journal of events replays to the same state.
 */
import { isDamagedState } from '../store/ports';

export interface GroupRecord {
  id: string;
  group: string[];
  status: number;
  create: number;
  update: number;
  notice: unknown[];
  manager: string;
  founder: string;
  announce: { content: string; expired: number };
  permit: { free: boolean; announce: boolean };
  block: string[];
  nick: string;
}

export type UpdateKey = 'nick' | 'announce' | 'expired' | 'pmt_announce' | 'pmt_free';

export type GroupEvent =
  | { e: 'created'; record: GroupRecord }
  | { e: 'joined'; account: string; at: number }
  | { e: 'members'; members: string[]; at: number }
  | { e: 'left'; account: string; manager: string; at: number }
  | { e: 'diverted'; manager: string; at: number }
  | { e: 'deported'; account: string; at: number }
  | { e: 'recovered'; account: string; at: number }
  | { e: 'updated'; key: UpdateKey; value: string | number | boolean; at: number }
  | { e: 'destroyed'; at: number };

/** Returns the state after the event; `undefined` means the group no longer exists. */
export function applyGroup(g: GroupRecord | undefined, ev: GroupEvent): GroupRecord | undefined {
  if (ev.e === 'created') return structuredClone(ev.record);
  if (g === undefined) return undefined;
  switch (ev.e) {
    case 'joined':
      if (!g.group.includes(ev.account)) g.group.push(ev.account);
      break;
    case 'members':
      g.group = [...ev.members];
      break;
    case 'left':
      g.group = g.group.filter((a) => a !== ev.account);
      g.manager = ev.manager;
      break;
    case 'diverted':
      g.manager = ev.manager;
      break;
    case 'deported':
      g.group = g.group.filter((a) => a !== ev.account);
      if (!g.block.includes(ev.account)) g.block.push(ev.account);
      break;
    case 'recovered':
      g.block = g.block.filter((a) => a !== ev.account);
      break;
    case 'updated':
      applyUpdate(g, ev.key, ev.value);
      break;
    case 'destroyed':
      return undefined;
  }
  g.update = ev.at;
  return g;
}

function applyUpdate(g: GroupRecord, key: UpdateKey, value: string | number | boolean): void {
  switch (key) {
    case 'nick': g.nick = String(value); break;
    case 'announce': g.announce.content = String(value); break;
    case 'expired': g.announce.expired = Number(value); break;
    case 'pmt_announce': g.permit.announce = Boolean(value); break;
    case 'pmt_free': g.permit.free = Boolean(value); break;
  }
}

export function newGroupRecord(id: string, members: string[], founder: string, now: number): GroupRecord {
  return {
    id,
    group: members,
    status: 1,
    create: now,
    update: now,
    notice: [],
    manager: founder,
    founder,
    announce: { content: '', expired: 0 },
    permit: { free: true, announce: false },
    block: [],
    nick: '',
  };
}

const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((a) => typeof a === 'string');
const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * A cheap check that a stored state is a group record the decisions can work with (what a
 * decision reads: ids, member and block lists, the manager, the permits and the announcement).
 * Returns what is wrong, or undefined when it is well formed.
 */
export function groupRecordFault(x: unknown, id: string): string | undefined {
  if (isDamagedState(x)) return 'its stored bytes are damaged (checksum)';
  if (!isObject(x)) return 'not an object';
  if (x.id !== id) return 'id does not match its address';
  if (!isStrings(x.group)) return '"group" is not a list of accounts';
  if (typeof x.manager !== 'string') return '"manager" is not a string';
  if (!isStrings(x.block)) return '"block" is not a list of accounts';
  if (!isObject(x.permit) || typeof x.permit.free !== 'boolean' || typeof x.permit.announce !== 'boolean') return '"permit" is not { free, announce }';
  if (!isObject(x.announce)) return '"announce" is not an object';
  if (!Array.isArray(x.notice)) return '"notice" is not a list';
  return undefined;
}
