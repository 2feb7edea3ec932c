/**
 * The demo page's check of a device vouch (the SDK's VouchVerifier): is `signature` (hex) the
 * signature of `text` by the key of the SS58 `account`? The Node entry uses @polkadot/util-crypto;
 * the page has no WebAssembly, so it checks what an SS58 account signs with here:
 * - sr25519 with @scure/sr25519 (pure JavaScript, already in the bundle for the page's own key);
 * - Ed25519 with the browser's WebCrypto;
 * each over the text as it is and wrapped in `<Bytes>…</Bytes>` (what wallet extensions sign).
 * ECDSA accounts (a 33-byte key behind the address's hash) are not checked: false.
 * Never throws: anything malformed is false.
 */
import * as sr25519 from '@scure/sr25519';
import { base58 } from '@scure/base';
import type { VouchVerifier } from '../client/browser.js';
import { ss58Checksum } from './key.js';

const enc = new TextEncoder();

/** The 32-byte public key of an SS58 address whose checksum holds, else undefined. */
export function ss58Decode(address: string): Uint8Array | undefined {
  let raw: Uint8Array;
  try { raw = base58.decode(address); } catch { return undefined; }
  if (raw.length === 0) return undefined;
  // Prefixes below 64 take one byte; 64..16383 take two, the first with bit 6 set (0b01xxxxxx).
  const first = raw[0]!;
  const prefixLen = first < 64 ? 1 : first < 128 ? 2 : 0;
  if (prefixLen === 0 || raw.length !== prefixLen + 32 + 2) return undefined;
  const body = raw.subarray(0, prefixLen + 32);
  const [c0, c1] = ss58Checksum(body);
  if (c0 !== raw[prefixLen + 32] || c1 !== raw[prefixLen + 33]) return undefined;
  return raw.slice(prefixLen, prefixLen + 32);
}

/** The bytes of a hex string (with or without 0x), or undefined when it is not hex. */
function unhex(s: string): Uint8Array | undefined {
  const h = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s;
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) return undefined;
  return Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
}

function srOk(message: Uint8Array, sig: Uint8Array, pub: Uint8Array): boolean {
  try { return sr25519.verify(message, sig, pub); } catch { return false; }
}

async function edOk(message: Uint8Array, sig: Uint8Array, pub: Uint8Array): Promise<boolean> {
  try {
    const subtle = globalThis.crypto?.subtle;
    if (subtle === undefined) return false;
    const key = await subtle.importKey('raw', pub as BufferSource, { name: 'Ed25519' }, false, ['verify']);
    return await subtle.verify({ name: 'Ed25519' }, key, sig as BufferSource, message as BufferSource);
  } catch { return false; }
}

/** Checks that `signature` is `account`'s signature of the UTF-8 `text` (sr25519, else Ed25519). */
export const verify: VouchVerifier = async (text, signature, account) => {
  try {
    if (typeof text !== 'string' || typeof signature !== 'string' || typeof account !== 'string') return false;
    const pub = ss58Decode(account);
    const sig = unhex(signature);
    if (pub === undefined || sig === undefined || sig.length !== 64) return false;
    const forms = [enc.encode(text), enc.encode(`<Bytes>${text}</Bytes>`)];
    if (forms.some((m) => srOk(m, sig, pub))) return true;
    for (const m of forms) if (await edOk(m, sig, pub)) return true;
    return false;
  } catch { return false; }
};
