/**
 * The group calls of the client (`client.group.*`): one `group` request each, with its answer.
 * Apart from the client so that the group surface reads as one list; every call goes through the
 * client's `request` (so it is matched, repeated and timed like any other).
 */
import { ClientCode, ImgcError } from './errors.js';
import { randomId } from './random.js';
import { ask, type Requester } from './requests.js';
import type { GroupRecord, GroupUpdateKey, Request } from './types.js';

/** A group message or notice: resolves with its `mid` once it is in the group's log. */
type Post = (id: string, msg: unknown, mid?: string) => Promise<{ mid: string; id: string; encrypted: boolean }>;

/** The `group` object of a client. */
export interface GroupCalls {
  /** A new group of `list` plus this account (manager and founder); resolves with its id. */
  create: (list: string[]) => Promise<string>;
  detail: (id: string) => Promise<GroupRecord>;
  /** Joins `account` (default: this one) to the group. */
  join: (id: string, account?: string) => Promise<unknown>;
  /** Sets the membership to `members` (the manager stays). */
  members: (id: string, members: string[]) => Promise<unknown>;
  leave: (id: string, account?: string) => Promise<unknown>;
  divert: (id: string, manager: string) => Promise<unknown>;
  deport: (id: string, account: string) => Promise<unknown>;
  recover: (id: string, account: string) => Promise<unknown>;
  destory: (id: string) => Promise<unknown>;
  /** A group message; resolves once it is in the group's log. */
  chat: Post;
  /** A group notice (manager, or members with `permit.announce`). */
  notice: Post;
  update: (id: string, key: GroupUpdateKey, val: unknown) => Promise<unknown>;
}

/** What the group calls need of the client: requests, and posts that may be encrypted. */
export interface GroupHost extends Requester {
  /** Posts `msg` in a conversation (encrypted end to end when it can be); true when encrypted. */
  post(conv: { group: string }, msg: unknown, mid: string, frame: (msg: unknown, mid: string) => Request): Promise<boolean>;
}

/**
 * `chat` sent with a `mid`, encrypted end to end when every member has device keys; repeated until
 * it is in the group's log. Notices (announcements) go as they are.
 */
function chat(host: GroupHost): Post {
  return async (id, msg, mid = randomId()) => {
    const encrypted = await host.post({ group: id }, msg, mid, (m, i) => ({ cat: 'group', act: 'chat', to: id, msg: m, mid: i }));
    return { mid, id, encrypted };
  };
}

function notice(host: Requester): Post {
  return async (id, msg, mid = randomId()) => {
    await host.request({ cat: 'group', act: 'notice', to: id, msg, mid }, true);
    return { mid, id, encrypted: false };
  };
}

async function create(host: Requester, list: string[]): Promise<string> {
  const n = await host.request({ cat: 'group', act: 'create', list }, false);
  const id = (n.msg as { id?: unknown } | null)?.id;
  if (typeof id !== 'string') throw new ImgcError(ClientCode.BAD_ANSWER, `create answered without an id: ${JSON.stringify(n)}`);
  return id;
}

/** The `group` object of the client `host`. */
export function groupCalls(host: GroupHost): GroupCalls {
  return {
    create: (list) => create(host, list),
    detail: (id) => ask(host, true, () => ({ cat: 'group', act: 'detail', id })),
    join: (id, account = host.account) => ask(host, false, () => ({ cat: 'group', act: 'join', id, account })),
    members: (id, members) => ask(host, false, () => ({ cat: 'group', act: 'members', id, members: members.join('_') })),
    leave: (id, account = host.account) => ask(host, false, () => ({ cat: 'group', act: 'leave', id, account })),
    divert: (id, manager) => ask(host, false, () => ({ cat: 'group', act: 'divert', id, manager })),
    deport: (id, account) => ask(host, false, () => ({ cat: 'group', act: 'deport', id, account })),
    recover: (id, account) => ask(host, false, () => ({ cat: 'group', act: 'recover', id, account })),
    destory: (id) => ask(host, false, () => ({ cat: 'group', act: 'destory', id })),
    chat: chat(host),
    notice: notice(host),
    update: (id, key, val) => ask(host, false, () => ({ cat: 'group', act: 'update', id, key, val })),
  };
}
