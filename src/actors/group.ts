/**
 * The group actor: decides one request against its group's state, as the reference's permission
 * rules say (only members read or post, only the manager manages, the block list and the permits
 * are honoured). It returns events for the state and output for members; it never touches a socket.
 */
import { Code, type ErrorCode } from '../protocol/codes';
import { errorFrame, eventTemplate, groupNoticeTemplate, groupTemplate, noticeFrame } from '../protocol/frames';
import { groupConv } from '../store/ports';
import type { GroupCall, Post, Reply } from './envelopes';
import { newGroupRecord, type GroupEvent, type GroupRecord, type UpdateKey } from './group-state';

export interface Decision {
  events: GroupEvent[];
  out: Array<Reply | Post>;
}

export interface GroupLimits {
  maxGroupSize: number;
  /** Most accounts on a group's block list (absent: no bound). */
  maxBlocked?: number;
  /** Largest `detail` answer in bytes (absent: no bound); the node gives --max-buffered / 8. */
  maxDetailBytes?: number;
}

type LimitName = NonNullable<Reply['limit']>;

class Refusal extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly limit?: LimitName) { super(message); }
}

const refuse = (code: ErrorCode, text: string, limit?: LimitName): never => { throw new Refusal(code, text, limit); };

/** Decides `call` against `g` (undefined: no such group). Refusals become an error frame to the requester. */
export function decideGroup(g: GroupRecord | undefined, call: GroupCall, limits: GroupLimits): Decision {
  try {
    return decide(g, call, limits);
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    const { origin } = call;
    const reply: Reply = { t: 'reply', conn: origin.conn, frame: errorFrame(err.code, err.message, origin.request) };
    if (err.limit) reply.limit = err.limit;
    return { events: [], out: [reply] };
  }
}

function decide(g: GroupRecord | undefined, call: GroupCall, limits: GroupLimits): Decision {
  const { origin, now } = call;
  const r = origin.request;
  const me = origin.account;
  const act = r.act;
  if (act === 'create') return create(g, call, limits);
  if (g === undefined) return refuse(Code.INVALID_GROUP, 'no such group');

  const isMember = g.group.includes(me);
  const isManager = g.manager === me;
  const requireMember = () => { if (!isMember) refuse(Code.NOT_PERMITTED, 'only members may do this'); };
  const requireManager = () => { if (!isManager) refuse(Code.NOT_PERMITTED, 'only the manager may do this'); };
  const reply = (msg: unknown): Reply => ({ t: 'reply', conn: origin.conn, frame: noticeFrame('group', act, msg, r.callback) });
  /**
   * The requester's own answer, and the event notice for everyone else: one record in the group's
   * log for the members after the change (`stay`), and one in the own log of each account the
   * change puts out of the group (`out`), which no longer reads the group's log.
   */
  const announce = (stay: string[], msg: unknown, out: string[] = []): Array<Reply | Post> => {
    const tpl = eventTemplate(act, msg);
    const posts: Array<Reply | Post> = [reply(msg)];
    if (stay.length > 0) posts.push({ t: 'post', conv: groupConv(g.id), tpl, from: null, to: stay, except: origin.conn });
    if (out.length > 0) posts.push({ t: 'post', conv: 'own', tpl, from: null, to: out, except: origin.conn });
    return posts;
  };

  switch (act) {
    case 'detail': {
      requireMember();
      const answer = reply(g);
      // A group larger than today's limits (imported, or limits lowered) could answer more than a socket may hold.
      if (limits.maxDetailBytes !== undefined && Buffer.byteLength((answer as Reply).frame) > limits.maxDetailBytes) {
        refuse(Code.UNEXPECTED_INPUT, `group detail is larger than ${limits.maxDetailBytes} bytes`, 'detailBytes');
      }
      return { events: [], out: [answer] };
    }

    case 'join': {
      const account = r.account as string;
      refuseScreened(call, account);
      if (g.block.includes(account)) refuse(Code.NOT_PERMITTED, 'account is blocked from this group');
      if (g.group.includes(account)) refuse(Code.UNEXPECTED_INPUT, 'account is already a member');
      // Free groups: anyone may join themselves; any group: the manager may add someone.
      const selfJoin = account === me && g.permit.free;
      if (!selfJoin && !isManager) refuse(Code.NOT_PERMITTED, g.permit.free ? 'only the account itself or the manager may join it' : 'group is not free to join');
      if (g.group.length >= limits.maxGroupSize) refuse(Code.UNEXPECTED_INPUT, `group is full (${limits.maxGroupSize})`, 'maxGroupSize');
      const msg = { id: g.id, from: me, account };
      return { events: [{ e: 'joined', account, at: now }], out: announce([...g.group, account], msg) };
    }

    case 'members': {
      requireManager();
      // Screened accounts stay out if they are not members already; overQuota ones are named in the answer.
      const keepOut = screenedOut(call);
      const next = dedupe((r.members as string).split('_')).filter((a) => g.group.includes(a) || !keepOut.has(a));
      if (!next.includes(g.manager)) next.unshift(g.manager);
      if (next.length > limits.maxGroupSize) refuse(Code.UNEXPECTED_INPUT, `group is full (${limits.maxGroupSize})`, 'maxGroupSize');
      const blocked = next.filter((a) => g.block.includes(a));
      if (blocked.length > 0) refuse(Code.NOT_PERMITTED, `blocked accounts cannot be members: ${blocked.join(',')}`);
      const added = next.filter((a) => !g.group.includes(a));
      const removed = g.group.filter((a) => !next.includes(a));
      const msg = { id: g.id, from: me, added, removed };
      const posts = announce(next, msg, removed);
      const skipped = call.screened?.overQuota ?? [];
      if (skipped.length > 0) posts[0] = reply({ ...msg, skipped });
      return { events: [{ e: 'members', members: next, at: now }], out: posts };
    }

    case 'leave': {
      const account = r.account as string;
      if (account !== me) refuse(Code.NOT_PERMITTED, 'only the account itself may leave');
      requireMember();
      const rest = g.group.filter((a) => a !== account);
      if (rest.length === 0) {
        // The last member leaving ends the group; nobody is left to manage it.
        const msg = { id: g.id, from: me };
        return { events: [{ e: 'destroyed', at: now }], out: [reply(msg)] };
      }
      // A leaving manager hands the group to the longest-standing member.
      const manager = isManager ? rest[0]! : g.manager;
      const msg = { from: me, id: g.id, manager };
      return { events: [{ e: 'left', account, manager, at: now }], out: announce(rest, msg, [account]) };
    }

    case 'divert': {
      requireManager();
      const manager = r.manager as string;
      if (!g.group.includes(manager)) refuse(Code.NOT_PERMITTED, 'the new manager must be a member');
      const msg = { id: g.id, manager, from: me };
      return { events: [{ e: 'diverted', manager, at: now }], out: announce(g.group, msg) };
    }

    case 'deport': {
      requireManager();
      const account = r.account as string;
      if (account === me) refuse(Code.NOT_PERMITTED, 'the manager cannot deport itself');
      if (g.block.includes(account)) refuse(Code.UNEXPECTED_INPUT, 'account is already blocked');
      if (limits.maxBlocked !== undefined && g.block.length >= limits.maxBlocked) refuse(Code.UNEXPECTED_INPUT, `block list is full (${limits.maxBlocked})`, 'maxBlocked');
      const msg = { id: g.id, account, from: me };
      return { events: [{ e: 'deported', account, at: now }], out: announce(g.group.filter((a) => a !== account), msg, [account]) };
    }

    case 'recover': {
      requireManager();
      const account = r.account as string;
      if (!g.block.includes(account)) refuse(Code.UNEXPECTED_INPUT, 'account is not blocked');
      const msg = { id: g.id, account, from: me };
      return { events: [{ e: 'recovered', account, at: now }], out: announce(g.group, msg) };
    }

    case 'destory': {
      requireManager();
      const msg = { id: g.id, from: me };
      return { events: [{ e: 'destroyed', at: now }], out: announce([], msg, g.group) };
    }

    case 'chat':
    case 'notice': {
      requireMember();
      if (act === 'notice' && !isManager && !g.permit.announce) refuse(Code.NOT_PERMITTED, 'only the manager may send notices here');
      const msgJson = JSON.stringify(r.msg);
      const tpl = act === 'chat' ? groupTemplate(me, g.id, msgJson) : groupNoticeTemplate(me, g.id, msgJson);
      const others = g.group.filter((a) => a !== me);
      const post: Post = { t: 'post', conv: groupConv(g.id), tpl, from: me, to: others, origin: origin.conn };
      // With a client message id (or a callback) the sender hears back once the record is durable.
      if (r.callback !== undefined || r.mid !== undefined) post.ackTo = { conn: origin.conn, frame: noticeFrame('group', act, { id: g.id, mid: r.mid ?? null }, r.callback) };
      if (typeof r.mid === 'string') post.mid = r.mid;
      return { events: [], out: [post] };
    }

    case 'update': {
      requireMember();
      const { key, value } = checkUpdate(g, r.key, r.val, isManager);
      const msg = { key, value, id: g.id, from: me };
      return { events: [{ e: 'updated', key, value, at: now }], out: announce(g.group, msg) };
    }
  }
  return refuse(Code.INVALID_REQUEST, `unknown group act "${act}"`);
}

function create(g: GroupRecord | undefined, call: GroupCall, limits: GroupLimits): Decision {
  const { origin, now, id } = call;
  // Ids are random; a clash is so unlikely that asking the client to retry is enough.
  if (g !== undefined) refuse(Code.INTERNAL, 'group id clash, try again');
  const keepOut = screenedOut(call);
  const members = dedupe([origin.account, ...(origin.request.list as string[])]).filter((a) => !keepOut.has(a));
  if (members.length > limits.maxGroupSize) refuse(Code.UNEXPECTED_INPUT, `group is too large (${limits.maxGroupSize})`, 'maxGroupSize');
  const record = newGroupRecord(id, members, origin.account, now);
  const msg = { id };
  // Accounts left out for the stranger bound are named to the creator; blocked ones are not (blocking is not revealed).
  const skipped = call.screened?.overQuota ?? [];
  return {
    events: [{ e: 'created', record }],
    out: [
      { t: 'reply', conn: origin.conn, frame: noticeFrame('group', 'create', skipped.length > 0 ? { id, skipped } : msg, origin.request.callback) },
      // Being added to a group is news for each member alone: it goes to their own logs.
      { t: 'post', conv: 'own', tpl: eventTemplate('create', msg), from: null, to: members, except: origin.conn },
    ],
  };
}

/** Every account the main thread screened out of this request (blocks.ts). */
function screenedOut(call: GroupCall): ReadonlySet<string> {
  const s = call.screened;
  return new Set(s === undefined ? [] : [...s.blocked, ...s.overQuota]);
}

/** A `join` that adds a screened account is refused: 44501 when it blocked the adder, 44029 past its stranger bound. */
function refuseScreened(call: GroupCall, account: string): void {
  if (call.screened?.blocked.includes(account)) refuse(Code.NOT_PERMITTED, 'this account cannot be added by you');
  if (call.screened?.overQuota.includes(account)) refuse(Code.RATE_LIMITED, 'this account was added to enough groups by accounts it never wrote to this hour; retry later');
}

const UPDATE_KEYS: readonly UpdateKey[] = ['nick', 'announce', 'expired', 'pmt_announce', 'pmt_free'];

function checkUpdate(g: GroupRecord, key: unknown, val: unknown, isManager: boolean): { key: UpdateKey; value: string | number | boolean } {
  if (typeof key !== 'string' || !(UPDATE_KEYS as readonly string[]).includes(key)) {
    return refuse(Code.UNEXPECTED_INPUT, `"key" must be one of ${UPDATE_KEYS.join(', ')}`);
  }
  const k = key as UpdateKey;
  if ((k === 'pmt_announce' || k === 'pmt_free') && !isManager) refuse(Code.NOT_PERMITTED, 'only the manager may change permits');
  if ((k === 'announce' || k === 'expired') && !isManager && !g.permit.announce) refuse(Code.NOT_PERMITTED, 'only the manager may change the announcement');
  switch (k) {
    case 'nick':
    case 'announce':
      if (typeof val !== 'string' || val.length > (k === 'nick' ? 128 : 4096)) refuse(Code.UNEXPECTED_INPUT, `"val" for ${k} must be a string`);
      return { key: k, value: val as string };
    case 'expired':
      if (typeof val !== 'number' || !Number.isFinite(val) || val < 0) refuse(Code.UNEXPECTED_INPUT, '"val" for expired must be a non-negative number');
      return { key: k, value: val as number };
    default: {
      const b = val === true || val === 1 || val === 'true' ? true : val === false || val === 0 || val === 'false' ? false : undefined;
      if (b === undefined) refuse(Code.UNEXPECTED_INPUT, `"val" for ${k} must be true or false`);
      return { key: k, value: b as boolean };
    }
  }
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}
