/**
 * Accounts as 32-bit hashes, to tell a node cheaply whether a ledger entry writes to any account
 * signed in on its sockets. An entry lists the hashes of the accounts it writes to (up to
 * MAX_LISTED; more: `any`) in its header (cluster/interest.ts); a node keeps the hashes of its
 * signed-in accounts, counted (supervisor/registry.ts). No common hash: no socket of the node is a
 * recipient, and it skips the entry unread. A common hash may be a collision (about one entry in
 * 20,000 for a node of 1,000 accounts and an entry of 100): the node then reads the entry and
 * finds nothing, as it would have anyway.
 */
import { fnv1a32 } from './hash';

/** Accounts an entry lists; an entry writing to more is for any node that holds a socket. */
export const MAX_LISTED = 256;

/** The hashes of an entry's accounts, or `any`. */
export type AccountHashes = Int32Array | 'any';

/** Signed 32 bits: a small integer to V8, so sets and maps of them need no heap numbers. */
export function accountHash(account: string): number { return fnv1a32(account) | 0; }

/** As a header field: `*` for any, else base64 of the big-endian hashes. */
export function hashesToText(h: AccountHashes): string {
  if (h === 'any') return '*';
  const b = Buffer.allocUnsafe(h.length * 4);
  for (let i = 0; i < h.length; i++) b.writeInt32BE(h[i]!, i * 4);
  return b.toString('base64');
}

/** The field written by hashesToText; undefined for anything else. */
export function hashesFromText(s: string): AccountHashes | undefined {
  if (s === '*') return 'any';
  if (s.length % 4 !== 0) return undefined;
  const b = Buffer.from(s, 'base64');
  // The decoder skips what is not base64 (no regex over a long header): then the length is off.
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  if (b.length !== (s.length / 4) * 3 - pad || b.length % 4 !== 0 || b.length / 4 > MAX_LISTED) return undefined;
  const out = new Int32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readInt32BE(i * 4);
  return out;
}

/** The signed-in accounts of one process, by hash, counted (two accounts may share one). */
export class AccountSet {
  private readonly counts = new Map<number, number>();

  add(account: string): void {
    const h = accountHash(account);
    this.counts.set(h, (this.counts.get(h) ?? 0) + 1);
  }

  remove(account: string): void {
    const h = accountHash(account);
    const n = this.counts.get(h);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(h); else this.counts.set(h, n - 1);
  }

  /** Whether an account of `h` may be one of these (false: certainly none). */
  holdsAny(h: AccountHashes): boolean {
    if (h === 'any') return this.counts.size > 0;
    for (const x of h) if (this.counts.has(x)) return true;
    return false;
  }
}
