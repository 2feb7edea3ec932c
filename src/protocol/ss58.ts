import { decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { LRUCache } from 'lru-cache';

/** Longest SS58 string we accept; real addresses are 47-49 characters, long-format ones a little more. */
const MAX_LEN = 64;

/**
 * Addresses already found valid. A base58 decode and blake2 checksum cost more than everything
 * else a chat message needs at the edge (the profile of the hot path said so), and the same few
 * addresses come back in every frame, so each is checked once.
 */
const known = new LRUCache<string, true>({ max: 200_000 });

/**
 * True when `s` is a well-formed SS58 address (base58, known length, valid checksum).
 * Raw hex public keys are refused: the wire speaks SS58 only.
 */
export function isSS58(s: unknown): s is string {
  if (typeof s !== 'string' || s.length < 32 || s.length > MAX_LEN || s.startsWith('0x')) return false;
  if (known.has(s)) return true;
  try {
    decodeAddress(s);
  } catch {
    return false;
  }
  known.set(s, true);
  return true;
}

/** The public key bytes behind an address (throws when the address is invalid). */
export function publicKeyOf(address: string): Uint8Array {
  return decodeAddress(address);
}

/** Same key, re-encoded for the given network prefix. */
export function reencode(address: string, prefix: number): string {
  return encodeAddress(decodeAddress(address), prefix);
}
