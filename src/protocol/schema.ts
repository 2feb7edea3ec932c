/**
 * One schema per (cat, act): every request is checked here, at the edge, before any actor sees it.
 * A schema lists its parameters and their kinds; anything else in the request is ignored, as the
 * first service did. Failure gives the code and text of the error frame.
 */
import { Code, type ErrorCode } from './codes';
import type { Request } from './request';
import { isSS58 } from './ss58';

type Kind =
  | 'ss58'        // one SS58 address
  | 'ss58list'    // array of SS58 addresses
  | 'underscored' // SS58 addresses joined by "_"
  | 'gid'         // group id
  | 'json'        // any JSON value of bounded depth
  | 'string'      // short text
  | 'seq'         // non-negative safe integer
  | 'bool';       // true or false

/**
 * `filled`: an empty string counts as missing (44001), as the first service answered for an empty `msg`.
 * `min`/`max`: the bounds of a `seq` (outside them: 44744).
 */
interface Param { kind: Kind; optional?: boolean; filled?: boolean; min?: number; max?: number }
export type Schema = Record<string, Param>;

const req = (kind: Kind): Param => ({ kind });
const opt = (kind: Kind): Param => ({ kind, optional: true });
/** The `msg` of a chat message or group notice: any JSON, but not absent and not "". */
const msg = (): Param => ({ kind: 'json', filled: true });

/** The limits a schema enforces; the config may tighten them. */
export const Limits = {
  maxDepth: 32,
  maxList: 5000,
  maxString: 4096,
};

export const schemas: Record<string, Record<string, Schema>> = {
  chat: {
    active: { acc: req('ss58'), sig: opt('string'), resume: opt('string'), sync: opt('string') },
    chat: { to: req('ss58'), msg: msg(), mid: opt('string') },
    to: { to: req('ss58'), msg: msg(), mid: opt('string') },
    online: {},
    offline: {},
    logout: { all: opt('bool') },
    ack: { seq: req('seq') },
    history: { with: opt('ss58'), group: opt('gid'), before: opt('seq'), after: opt('seq'), limit: { kind: 'seq', optional: true, min: 1, max: 100 } },
    edit: { with: opt('ss58'), group: opt('gid'), seq: req('seq'), msg: msg() },
    delete: { with: opt('ss58'), group: opt('gid'), seq: req('seq') },
    // Ephemeral acts (src/actors/presence.ts, typing.ts) and read receipts (receipts.ts).
    presence: { subscribe: opt('ss58list'), unsubscribe: opt('ss58list') },
    typing: { with: opt('ss58'), group: opt('gid') },
    read: { with: opt('ss58'), group: opt('gid'), seq: req('seq') },
    // The account's own block list (src/actors/blocks.ts).
    block: { account: req('ss58') },
    unblock: { account: req('ss58') },
    blocked: {},
  },
  group: {
    create: { list: req('ss58list') },
    detail: { id: req('gid'), online: opt('bool') },
    join: { id: req('gid'), account: req('ss58') },
    members: { id: req('gid'), members: req('underscored') },
    leave: { id: req('gid'), account: req('ss58') },
    divert: { id: req('gid'), manager: req('ss58') },
    deport: { id: req('gid'), account: req('ss58') },
    recover: { id: req('gid'), account: req('ss58') },
    destory: { id: req('gid') },
    chat: { to: req('gid'), msg: msg(), mid: opt('string') },
    notice: { to: req('gid'), msg: msg(), mid: opt('string') },
    update: { id: req('gid'), key: req('string'), val: req('json') },
  },
  vertify: {
    reg: { account: req('ss58') },
    token: {},
  },
};

export interface Invalid { code: ErrorCode; error: string }

const GID = /^GD[A-Za-z0-9]{6,40}$/;

/** Depth of a JSON value without recursion, so a hostile nesting cannot blow the stack. */
export function depthOf(value: unknown, limit: number): number {
  let stack: Array<[unknown, number]> = [[value, 1]];
  let max = 0;
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (d > max) max = d;
    if (max > limit) return max;
    if (v !== null && typeof v === 'object') {
      for (const child of Object.values(v as object)) {
        if (child !== null && typeof child === 'object') stack.push([child, d + 1]);
      }
    }
  }
  return max;
}

function checkParam(name: string, p: Param, v: unknown): Invalid | undefined {
  const bad = (what: string): Invalid => ({ code: Code.UNEXPECTED_INPUT, error: `"${name}" must be ${what}` });
  switch (p.kind) {
    case 'ss58':
      return isSS58(v) ? undefined : { code: Code.INVALID_ACCOUNT, error: `"${name}" is not a valid SS58 account` };
    case 'ss58list': {
      if (!Array.isArray(v)) return bad('an array of SS58 accounts');
      if (v.length === 0 || v.length > Limits.maxList) return bad(`an array of 1 to ${Limits.maxList} accounts`);
      return v.every(isSS58) ? undefined : { code: Code.INVALID_ACCOUNT, error: `"${name}" holds an invalid SS58 account` };
    }
    case 'underscored': {
      if (typeof v !== 'string' || v.length > Limits.maxList * 50) return bad('SS58 accounts joined by "_"');
      const list = v.split('_');
      return list.every(isSS58) ? undefined : { code: Code.INVALID_ACCOUNT, error: `"${name}" holds an invalid SS58 account` };
    }
    case 'gid':
      return typeof v === 'string' && GID.test(v) ? undefined : { code: Code.INVALID_GROUP, error: `"${name}" is not a group id` };
    case 'json':
      return depthOf(v, Limits.maxDepth) <= Limits.maxDepth ? undefined : bad(`nested at most ${Limits.maxDepth} deep`);
    case 'string':
      return typeof v === 'string' && v.length <= Limits.maxString ? undefined : bad(`a string of at most ${Limits.maxString} characters`);
    case 'seq': {
      if (!Number.isSafeInteger(v) || (v as number) < 0) return bad('a non-negative integer');
      const [min, max] = [p.min ?? 0, p.max ?? Number.MAX_SAFE_INTEGER];
      return (v as number) >= min && (v as number) <= max ? undefined : bad(`an integer from ${min} to ${max}`);
    }
    case 'bool':
      return typeof v === 'boolean' ? undefined : bad('true or false');
  }
}

/**
 * The request as its schema knows it: cat, act, callback, spam and the schema's parameters, nothing
 * else. Only this goes further in: an ignored field cannot weigh on a mailbox or an actor.
 */
export function sanitize(r: Request): Request {
  const cat = r.cat === undefined ? 'chat' : String(r.cat);
  const out: Request = r.cat === undefined ? { act: r.act } : { cat, act: r.act };
  if (r.callback !== undefined) out.callback = r.callback;
  if (r.spam !== undefined) out.spam = r.spam;
  for (const name of Object.keys(schemas[cat]?.[r.act] ?? {})) if (r[name] !== undefined) out[name] = r[name];
  return out;
}

/** Deeper than this, a value is not echoed back: serializing it could exhaust the stack. */
const ECHO_DEPTH = 256;

/** A request fit to echo in an error frame: a value nested beyond the limit is replaced by a note. */
export function echoable(request: unknown): unknown {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(request)) out[k] = depthOf(v, ECHO_DEPTH) > ECHO_DEPTH ? '[nested too deep]' : v;
  return out;
}

/** Checks a parsed frame: its shape, its (cat, act), and every parameter of that schema. */
export function validate(r: Request): Invalid | undefined {
  if (typeof r.act !== 'string') return { code: Code.INVALID_REQUEST, error: '"act" must be a string' };
  const cat = r.cat === undefined ? 'chat' : r.cat;
  if (typeof cat !== 'string' || !Object.hasOwn(schemas, cat)) return { code: Code.INVALID_REQUEST, error: 'unknown cat' };
  const acts = schemas[cat]!;
  if (!Object.hasOwn(acts, r.act)) return { code: Code.INVALID_REQUEST, error: `unknown act "${r.act}" in cat "${cat}"` };
  if (r.callback !== undefined && (typeof r.callback !== 'string' || r.callback.length > 256)) {
    return { code: Code.UNEXPECTED_INPUT, error: '"callback" must be a string of at most 256 characters' };
  }
  const schema = acts[r.act]!;
  for (const [name, p] of Object.entries(schema)) {
    const v = r[name];
    if (v === undefined || v === null || (p.filled === true && v === '')) {
      if (p.optional) continue;
      return { code: Code.MISSING_PARAMS, error: `missing parameter "${name}"` };
    }
    const invalid = checkParam(name, p, v);
    if (invalid) return invalid;
  }
  return undefined;
}
