/**
 * The Node entry's check of a vouch: @polkadot/util-crypto's `signatureVerify`, which knows every
 * key type an SS58 account may have (sr25519, ed25519, ecdsa) and the `<Bytes>` wrapping wallets
 * add. Not in the browser bundle (its WebAssembly); the page brings its own (src/web/key.ts).
 */
import { cryptoWaitReady, signatureVerify } from '@polkadot/util-crypto';
import type { VouchVerifier } from './device.js';

export const polkadotVerify: VouchVerifier = async (text, signature, account) => {
  await cryptoWaitReady();
  try { return signatureVerify(text, signature, account).isValid; } catch { return false; }
};
