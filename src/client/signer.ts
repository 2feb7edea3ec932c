/**
 * Signers: what signs the spam at sign-in. A @polkadot/keyring pair (anything with `address` and
 * `sign(bytes)`), or any function from the message text to a hex signature (a wallet extension's
 * `signRaw`, a hardware key).
 */

/** Signs the spam text (its UTF-8 bytes) and returns the hex signature (`0x…`). */
export type SignFn = (message: string) => Promise<string>;

/** The part of a @polkadot/keyring pair the client uses. */
export interface PairLike {
  address: string;
  sign(message: Uint8Array): Uint8Array;
}

export type Signer = SignFn | PairLike;

export function toHex(bytes: Uint8Array): string {
  let s = '0x';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** The SignFn of a signer. */
export function signFn(signer: Signer): SignFn {
  if (typeof signer === 'function') return signer;
  return async (message) => toHex(signer.sign(new TextEncoder().encode(message)));
}

/** The account of a signer, when it knows it (a pair does; a bare function does not). */
export function signerAddress(signer: Signer): string | undefined {
  return typeof signer === 'function' ? undefined : signer.address;
}
