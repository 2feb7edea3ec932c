/**
 * A small filter of accounts: 512 bits, one per account (a stable hash of its address picks it).
 * A ledger entry carries the filter of the accounts it writes to (cluster/interest.ts); a node keeps
 * a counting one of the accounts signed in on its sockets (supervisor/registry.ts). When the two
 * share no bit, no socket of the node is a recipient, so the node skips the entry unread. A shared
 * bit may be a collision: the node then reads the entry and finds nothing, as it did before.
 */
import { fnv1a32 } from './hash';

/** 32-bit words of a filter (512 bits: 64 bytes, 128 hex digits in a header). */
export const FILTER_WORDS = 16;
const BITS = FILTER_WORDS * 32;

export type AccountBits = Uint32Array;

/** The bit of `account`. */
export function accountBit(account: string): number { return fnv1a32(account) % BITS; }

export function emptyBits(): AccountBits { return new Uint32Array(FILTER_WORDS); }

export function setAccount(bits: AccountBits, account: string): void {
  const b = accountBit(account);
  bits[b >>> 5]! |= 1 << (b & 31);
}

export function bitsToHex(bits: AccountBits): string {
  let s = '';
  for (const w of bits) s += w.toString(16).padStart(8, '0');
  return s;
}

/** The filter written by bitsToHex; undefined for anything else. */
export function bitsFromHex(hex: string): AccountBits | undefined {
  if (hex.length !== FILTER_WORDS * 8 || !/^[0-9a-f]+$/.test(hex)) return undefined;
  const bits = emptyBits();
  for (let i = 0; i < FILTER_WORDS; i++) bits[i] = parseInt(hex.slice(i * 8, i * 8 + 8), 16);
  return bits;
}

/** The accounts of one process's sockets, counted per bit, so that one leaving clears its bit only when it was the last. */
export class AccountFilter {
  private readonly counts = new Uint32Array(BITS);
  private readonly bits = emptyBits();

  add(account: string): void {
    const b = accountBit(account);
    if (this.counts[b]!++ === 0) this.bits[b >>> 5]! |= 1 << (b & 31);
  }

  remove(account: string): void {
    const b = accountBit(account);
    if (this.counts[b] === 0) return;
    if (--this.counts[b]! === 0) this.bits[b >>> 5]! &= ~(1 << (b & 31));
  }

  /** Whether any account of `other` may be one of these (false: certainly none). */
  mayHoldAny(other: AccountBits): boolean {
    for (let i = 0; i < FILTER_WORDS; i++) if ((this.bits[i]! & other[i]!) !== 0) return true;
    return false;
  }
}
