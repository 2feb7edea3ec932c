import { decodeAddress, encodeAddress } from '@polkadot/util-crypto';

/** Longest SS58 string we accept; real addresses are 47-49 characters, long-format ones a little more. */
const MAX_LEN = 64;

/**
 * True when `s` is a well-formed SS58 address (base58, known length, valid checksum).
 * Raw hex public keys are refused: the wire speaks SS58 only.
 */
export function isSS58(s: unknown): s is string {
  if (typeof s !== 'string' || s.length < 32 || s.length > MAX_LEN || s.startsWith('0x')) return false;
  try {
    decodeAddress(s);
    return true;
  } catch {
    return false;
  }
}

/** The public key bytes behind an address (throws when the address is invalid). */
export function publicKeyOf(address: string): Uint8Array {
  return decodeAddress(address);
}

/** Same key, re-encoded for the given network prefix. */
export function reencode(address: string, prefix: number): string {
  return encodeAddress(decodeAddress(address), prefix);
}
