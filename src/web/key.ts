/**
 * The demo page's key: sr25519 in pure JavaScript (@scure/sr25519, no WebAssembly), the seed kept in
 * localStorage; the SS58 address (prefix 42) computed here as @polkadot/util-crypto does.
 */
import * as sr25519 from '@scure/sr25519';
import { blake2b } from '@noble/hashes/blake2b';
import { base58 } from '@scure/base';

export interface BrowserKey { address: string; sign(message: string): Promise<string> }

function hex(b: Uint8Array): string { return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''); }
function unhex(s: string): Uint8Array { return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16)); }

/** The two checksum bytes of an SS58 body (prefix ‖ key): blake2b-512("SS58PRE" ‖ body)[0..2]. */
export function ss58Checksum(body: Uint8Array): [number, number] {
  const hash = blake2b(new Uint8Array([...new TextEncoder().encode('SS58PRE'), ...body]), { dkLen: 64 });
  return [hash[0]!, hash[1]!];
}

/** SS58 of a 32-byte public key: base58(prefix ‖ key ‖ checksum). */
export function ss58(publicKey: Uint8Array, prefix = 42): string {
  const body = new Uint8Array([prefix, ...publicKey]);
  return base58.encode(new Uint8Array([...body, ...ss58Checksum(body)]));
}

/** The key of this browser profile (made on first use). */
export function loadKey(storage: Storage = localStorage): BrowserKey {
  let seedHex = storage.getItem('imgc.seed');
  if (seedHex === null) {
    const seed = new Uint8Array(32);
    crypto.getRandomValues(seed);
    seedHex = hex(seed);
    storage.setItem('imgc.seed', seedHex);
  }
  const secret = sr25519.secretFromSeed(unhex(seedHex));
  const address = ss58(sr25519.getPublicKey(secret));
  return { address, sign: async (m) => `0x${hex(sr25519.sign(secret, new TextEncoder().encode(m)))}` };
}
