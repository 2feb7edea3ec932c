/**
 * One schema per (cat, act): every request is checked here, at the edge, before any actor sees it.
 * A schema lists its parameters and their kinds; anything else in the request is ignored, as the
 * first service did. Failure gives the code and text of the error frame.
 */
import { Code, type ErrorCode } from './codes';
import type { Request } from './request';
import { KeyWire } from './key-wire';
import { isSS58 } from './ss58';

type Kind =
  | 'ss58'        // one SS58 address
  | 'ss58list'    // array of SS58 addresses
  | 'underscored' // SS58 addresses joined by "_"
  | 'gid'         // group id
  | 'json'        // any JSON value of bounded depth
  | 'string'      // short text
  | 'seq'         // non-negative safe integer
  | 'bool'        // true or false
  | 'device'      // a device id: 64 lowercase hex characters
  | 'devicelist'  // array of device ids
  | 'b64'         // standard base64 text (an opaque blob the server never parses)
  | 'b64list';    // array of base64 texts

/**
 * `filled`: an empty string counts as missing (44001), as the first service answered for an empty `msg`.
 * `min`/`max`: the bounds of a `seq`, or the length of a list (`ss58list` 1 to Limits.maxList by
 * default); outside them: 44744.
 * `chars`: the longest `b64` (each one of a `b64list`).
 * `distinct`: a list may not name the same item twice (44744).
 */
interface Param { kind: Kind; optional?: boolean; filled?: boolean; min?: number; max?: number; chars?: number; distinct?: boolean }
export type Schema = Record<string, Param>;

const req = (kind: Kind): Param => ({ kind });
const opt = (kind: Kind): Param => ({ kind, optional: true });
/** The `msg` of a chat message or group notice: any JSON, but not absent and not "". */
const msg = (): Param => ({ kind: 'json', filled: true });

/** A bounded list (`min` to `max` items), required or optional. */
const list = (kind: Kind, min: number, max: number, more: Partial<Param> = {}): Param => ({ kind, min, max, ...more });

export { KeyWire };

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
  // One-time MLS key packages per account and device (src/actors/key-packages.ts).
  keys: {
    publish: {
      device: req('device'),
      packages: list('b64list', 0, KeyWire.publishMax, { chars: KeyWire.packageChars }),
      lastResort: { kind: 'b64', optional: true, chars: KeyWire.packageChars },
    },
    claim: {
      accounts: list('ss58list', 1, KeyWire.claimAccounts, { distinct: true }),
      except: list('devicelist', 0, KeyWire.claimExcept, { optional: true }),
    },
    count: {},
    remove: { device: req('device') },
  },
};

export interface Invalid { code: ErrorCode; error: string }

const GID = /^GD[A-Za-z0-9]{6,40}$/;
const DEVICE = /^[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

const isDevice = (v: unknown): boolean => typeof v === 'string' && DEVICE.test(v);
/** Standard base64 of 1 to `chars` characters (the length is checked before the pattern runs). */
const isB64 = (v: unknown, chars: number): boolean => typeof v === 'string' && v.length >= 1 && v.length <= chars && BASE64.test(v);

/** A list's own shape: an array of `min` to `max` items, each named once when `distinct`. */
function checkList(name: string, p: Param, v: unknown, what: string): Invalid | undefined {
  const [min, max] = [p.min ?? 1, p.max ?? Limits.maxList];
  if (!Array.isArray(v) || v.length < min || v.length > max) {
    return { code: Code.UNEXPECTED_INPUT, error: `"${name}" must be an array of ${min} to ${max} ${what}` };
  }
  if (p.distinct === true && new Set(v).size !== v.length) return { code: Code.UNEXPECTED_INPUT, error: `"${name}" names the same item twice` };
  return undefined;
}

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
      const shape = checkList(name, p, v, 'accounts');
      if (shape) return shape;
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
    case 'device':
      return isDevice(v) ? undefined : bad('a device id (64 lowercase hex characters)');
    case 'devicelist':
      return checkList(name, p, v, 'device ids') ?? ((v as unknown[]).every(isDevice) ? undefined : bad('an array of device ids (64 lowercase hex characters each)'));
    case 'b64':
      return isB64(v, p.chars ?? Limits.maxString) ? undefined : bad(`standard base64 of 1 to ${p.chars ?? Limits.maxString} characters`);
    case 'b64list': {
      const chars = p.chars ?? Limits.maxString;
      return checkList(name, p, v, 'base64 texts') ?? ((v as unknown[]).every((x) => isB64(x, chars)) ? undefined : bad(`an array of standard base64 texts of 1 to ${chars} characters each`));
    }
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
