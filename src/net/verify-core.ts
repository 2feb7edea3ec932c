/**
 * Sign-in signature checks, with the scheme chosen from the signature before any curve work:
 *
 *   64 bytes                   sr25519 (what @polkadot/keyring makes by default), then ed25519
 *   65 bytes, first byte 0|1   a multi-signature: 0 ed25519, 1 sr25519 over the other 64 bytes;
 *                              failing that, an ecdsa signature whose r starts with that byte
 *   65 bytes, other first byte ecdsa (r, s, recovery id), blake2-256 of the message, as Substrate
 *   66 bytes, first byte 2     a multi-signature of ecdsa over the other 65 bytes
 *
 * A valid sr25519 sign-in, the common case, costs one verification instead of the two or three of
 * `signatureVerify`, which tries ed25519 first. Each scheme is tried on the spam and then on the
 * spam wrapped in `<Bytes>…</Bytes>` (what browser extensions' signRaw signs), as `signatureVerify` does.
 *
 * Two implementations of the primitives: `wasm` (@polkadot/wasm-crypto, schnorrkel compiled to
 * WebAssembly: about 8x faster for sr25519 than the pure-JS @scure/sr25519) and `js` (the pure-JS
 * paths of @polkadot/util-crypto), kept as the fallback when the WebAssembly cannot start.
 */
import { hexToU8a, stringToU8a, u8aEq, u8aWrapBytes } from '@polkadot/util';
import { decodeAddress, ed25519Verify, secp256k1Verify, sr25519Verify as sr25519VerifyJs } from '@polkadot/util-crypto';
import * as wasm from '@polkadot/wasm-crypto';

export type Impl = 'wasm' | 'js';
export type Scheme = 'sr25519' | 'ed25519' | 'ecdsa';

interface Primitives {
  sr25519(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean;
  ed25519(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean;
  ecdsa(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean;
}

const PRIMITIVES: Record<Impl, Primitives> = {
  wasm: {
    sr25519: (sig, msg, pub) => wasm.sr25519Verify(sig, msg, pub),
    ed25519: (sig, msg, pub) => wasm.ed25519Verify(sig, msg, pub),
    // util-crypto's recover and blake2 run in WebAssembly once it is ready (onlyJs false).
    ecdsa: (sig, msg, pub) => secp256k1Verify(msg, sig, pub, 'blake2', false),
  },
  js: {
    sr25519: (sig, msg, pub) => sr25519VerifyJs(msg, sig, pub),
    ed25519: (sig, msg, pub) => ed25519Verify(msg, sig, pub, true),
    ecdsa: (sig, msg, pub) => secp256k1Verify(msg, sig, pub, 'blake2', true),
  },
};

let wasmReady: Promise<boolean> | undefined;

/** Starts the WebAssembly once per thread; false when it cannot start (then only `js` works). */
export function initWasm(): Promise<boolean> {
  wasmReady ??= wasm.waitReady().then((ok) => ok && wasm.isReady(), () => false);
  return wasmReady;
}

export function wasmIsReady(): boolean { return wasm.isReady(); }

const HEX_SIG = /^0x(?:[0-9a-fA-F]{2}){64,66}$/;

/** The (scheme, signature bytes) pairs to try, most likely first. */
export function candidates(sig: Uint8Array): Array<[Scheme, Uint8Array]> {
  if (sig.length === 64) return [['sr25519', sig], ['ed25519', sig]];
  if (sig.length === 65) {
    const ecdsa: [Scheme, Uint8Array] = ['ecdsa', sig];
    if (sig[0] === 0) return [['ed25519', sig.subarray(1)], ecdsa];
    if (sig[0] === 1) return [['sr25519', sig.subarray(1)], ecdsa];
    return [ecdsa];
  }
  if (sig.length === 66 && sig[0] === 2) return [['ecdsa', sig.subarray(1)]];
  return [];
}

/** The scheme that verifies, or null; malformed input is simply null. */
export function verifyScheme(impl: Impl, message: string, signature: string, address: string): Scheme | null {
  if (!HEX_SIG.test(signature)) return null;
  if (impl === 'wasm' && !wasm.isReady()) throw new Error('the WebAssembly verifier is not initialised');
  let pub: Uint8Array;
  try {
    pub = decodeAddress(address);
  } catch {
    return null;
  }
  if (pub.length !== 32) return null;
  const sig = hexToU8a(signature);
  const raw = stringToU8a(message);
  const wrapped = u8aWrapBytes(raw);
  const p = PRIMITIVES[impl];
  for (const [scheme, bytes] of candidates(sig)) {
    for (const msg of u8aEq(raw, wrapped) ? [raw] : [raw, wrapped]) {
      try {
        if (p[scheme](bytes, msg, pub)) return scheme;
      } catch {
        // A signature that is not a point on the curve, a recovery id out of range: not valid.
      }
    }
  }
  return null;
}

export function verify(impl: Impl, message: string, signature: string, address: string): boolean {
  return verifyScheme(impl, message, signature, address) !== null;
}
