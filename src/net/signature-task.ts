/**
 * Piscina task: checks that `signature` is `address`'s signature of `message` (sr25519, ed25519 or
 * ecdsa). Stateless and CPU-bound, which is what a piscina pool is for; it keeps sign-in bursts
 * from stalling the thread that serves the sockets.
 */
import { cryptoWaitReady, signatureVerify } from '@polkadot/util-crypto';

export interface SignatureCheck { message: string; signature: string; address: string }

const ready = cryptoWaitReady();

export default async function check(task: SignatureCheck): Promise<boolean> {
  await ready;
  try {
    return signatureVerify(task.message, task.signature, task.address).isValid;
  } catch {
    // A malformed signature or address is simply not a valid signature.
    return false;
  }
}
