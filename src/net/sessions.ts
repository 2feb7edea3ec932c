/**
 * Resume tokens: after a signed sign-in the Welcome carries one, and a later `active` may show it
 * instead of a signature. Checking it is one HMAC-SHA256 on the socket thread (microseconds), so a
 * reconnect storm costs no public-key cryptography.
 *
 *   token = base64url(JSON {"a":account,"i":issuedMs,"e":expiresMs,"j":tokenId}) "." base64url(MAC)
 *   MAC   = HMAC-SHA256(key, "imgc-resume-1." + first part)
 *
 * The key is 32 random bytes in `<data>/resume-key` (mode 0600), made at the first start, so tokens
 * survive restarts, and every node of a cluster that shares the file can check them. Clients treat
 * the token as opaque.
 *
 * Revocation: `logout` revokes the token of the device (its id, kept until the token expires),
 * `logout` with `all` and the operator revoke every token of an account issued until then (kept
 * until the longest possible token has expired). The list is plain JSON the node keeps in the store
 * as actor state (`sessions:revoked`), so it holds across restarts and is in every backup.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writePrivateFileAtomic } from '../files';

export const RESUME_KEY_FILE = 'resume-key';
export const REVOKED_ADDRESS = 'sessions:revoked';
/** The longest token lifetime a setting may give (config max): account revocations are kept this long. */
export const MAX_RESUME_TTL_MS = 30 * 24 * 3600_000;
const DOMAIN = 'imgc-resume-1.';
const B64URL = /^[A-Za-z0-9_-]+$/;

export interface RevokedState {
  v: 1;
  /** Token id → its expiry (ms): a logged-out device's token. */
  ids: Record<string, number>;
  /** Account → tokens issued at or before this time (ms) are revoked. */
  accounts: Record<string, number>;
}

export interface Issued { token: string; id: string; exp: number }

export type ResumeCheck =
  | { ok: true; id: string; exp: number }
  | { ok: false; reason: 'malformed' | 'bad-mac' | 'other-account' | 'expired' | 'revoked' };

interface Payload { a: string; i: number; e: number; j: string }

/** The MAC key in `<dir>/resume-key`: read, or made (atomically, mode 0600) at the first start. */
export function loadOrCreateResumeKey(dir: string): Buffer {
  const file = join(dir, RESUME_KEY_FILE);
  try {
    const hex = readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${file} does not hold a 32-byte hex key`);
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return Buffer.from(hex, 'hex');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const key = randomBytes(32);
  writePrivateFileAtomic(file, `${key.toString('hex')}\n`);
  return key;
}

export class Sessions {
  private revoked: RevokedState;
  readonly figures = { issued: 0, revokedIds: 0, revokedAccounts: 0 };

  /**
   * `persist` is called with the whole revocation list after every change (the node stores it);
   * `ttlMs` is the lifetime of new tokens, and caps older ones too (a token lives until the earlier
   * of its own expiry and its issue time plus the current setting).
   */
  constructor(private readonly key: Buffer, readonly ttlMs: number, stored: unknown, private readonly persist: (s: RevokedState) => void) {
    this.revoked = parseRevoked(stored);
  }

  private mac(body: string): Buffer {
    return createHmac('sha256', this.key).update(DOMAIN).update(body).digest();
  }

  issue(account: string, now = Date.now()): Issued {
    // A token issued in the same millisecond as a revocation of its account must not fall under it.
    const i = Math.max(now, (this.revoked.accounts[account] ?? -1) + 1);
    const p: Payload = { a: account, i, e: i + this.ttlMs, j: randomBytes(12).toString('base64url') };
    const body = Buffer.from(JSON.stringify(p)).toString('base64url');
    this.figures.issued++;
    return { token: `${body}.${this.mac(body).toString('base64url')}`, id: p.j, exp: p.e };
  }

  check(token: string, account: string, now = Date.now()): ResumeCheck {
    if (typeof token !== 'string' || token.length > 512) return { ok: false, reason: 'malformed' };
    const dot = token.indexOf('.');
    if (dot <= 0 || dot !== token.lastIndexOf('.')) return { ok: false, reason: 'malformed' };
    const body = token.slice(0, dot);
    const mac = token.slice(dot + 1);
    if (!B64URL.test(body) || !B64URL.test(mac)) return { ok: false, reason: 'malformed' };
    const given = Buffer.from(mac, 'base64url');
    const expected = this.mac(body);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad-mac' };
    let p: Payload;
    try {
      p = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Payload;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (typeof p?.a !== 'string' || !Number.isSafeInteger(p.i) || !Number.isSafeInteger(p.e) || typeof p.j !== 'string') return { ok: false, reason: 'malformed' };
    if (p.a !== account) return { ok: false, reason: 'other-account' };
    if (now >= Math.min(p.e, p.i + this.ttlMs)) return { ok: false, reason: 'expired' };
    if (Object.hasOwn(this.revoked.ids, p.j)) return { ok: false, reason: 'revoked' };
    const before = this.revoked.accounts[account];
    if (before !== undefined && p.i <= before) return { ok: false, reason: 'revoked' };
    return { ok: true, id: p.j, exp: p.e };
  }

  /** Revokes one token (a device's logout), until it would have expired anyway. */
  /** The stored list changed elsewhere (another node): what it revoked holds here too. */
  adopt(stored: unknown): void { this.revoked = mergeRevoked(this.revoked, stored); }

  revokeId(id: string, exp: number, now = Date.now()): void {
    this.revoked.ids[id] = exp;
    this.figures.revokedIds++;
    this.changed(now);
  }

  /** Revokes every token of `account` issued until `now`. */
  revokeAccount(account: string, now = Date.now()): void {
    this.revoked.accounts[account] = Math.max(now, this.revoked.accounts[account] ?? 0);
    this.figures.revokedAccounts++;
    this.changed(now);
  }

  private changed(now: number): void {
    this.prune(now);
    this.persist(this.state());
  }

  /** Entries past their use go: a token id once its token expired, an account's once every token it covered has. */
  private prune(now: number): void {
    for (const [id, exp] of Object.entries(this.revoked.ids)) if (exp <= now) delete this.revoked.ids[id];
    for (const [a, t] of Object.entries(this.revoked.accounts)) if (t + MAX_RESUME_TTL_MS <= now) delete this.revoked.accounts[a];
  }

  state(): RevokedState {
    return { v: 1, ids: { ...this.revoked.ids }, accounts: { ...this.revoked.accounts } };
  }

  stats(): Record<string, number> {
    return {
      ...this.figures,
      revokedIdsKept: Object.keys(this.revoked.ids).length,
      revokedAccountsKept: Object.keys(this.revoked.accounts).length,
    };
  }
}

/**
 * Two revocation lists as one (cluster mode: nodes revoke independently; the list a node writes
 * must not undo another's): every id and account of either, each kept for the later of the two.
 */
export function mergeRevoked(a: unknown, b: unknown): RevokedState {
  const x = parseRevoked(a);
  const y = parseRevoked(b);
  for (const [k, t] of Object.entries(y.ids)) x.ids[k] = Math.max(t, x.ids[k] ?? t);
  for (const [k, t] of Object.entries(y.accounts)) x.accounts[k] = Math.max(t, x.accounts[k] ?? t);
  return x;
}

function parseRevoked(v: unknown): RevokedState {
  const out: RevokedState = { v: 1, ids: {}, accounts: {} };
  if (!v || typeof v !== 'object') return out;
  const s = v as Partial<RevokedState>;
  for (const [k, x] of Object.entries(s.ids ?? {})) if (Number.isSafeInteger(x)) out.ids[k] = x;
  for (const [k, x] of Object.entries(s.accounts ?? {})) if (Number.isSafeInteger(x)) out.accounts[k] = x;
  return out;
}
