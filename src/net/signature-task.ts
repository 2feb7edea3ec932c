/**
 * Piscina task: checks signatures of sign-ins (see verify-core.ts for the schemes). Stateless and
 * CPU-bound, which is what a piscina pool is for: it keeps sign-in bursts off the thread that
 * serves the sockets. Each worker starts the WebAssembly verifier once; when it cannot start, the
 * worker checks with the pure-JS path instead (and says so in its answer).
 */
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { initWasm, verify, type Impl } from './verify-core';

export interface SignatureCheck { message: string; signature: string; address: string }

/** One task: one or more checks (a batch), and optionally the implementation to use (benchmarks, tests). */
export interface SignatureTask { checks: SignatureCheck[]; impl?: Impl }

export interface SignatureAnswer { valid: boolean[]; impl: Impl }

// util-crypto's own WebAssembly (blake2, secp256k1 recover for ecdsa) and the verifier's.
const ready = Promise.all([cryptoWaitReady().catch(() => false), initWasm()]).then(([, ok]) => ok);

export default async function check(task: SignatureTask): Promise<SignatureAnswer> {
  const wasmOk = await ready;
  const impl: Impl = task.impl === 'js' || !wasmOk ? 'js' : 'wasm';
  const valid = task.checks.map((c) => {
    try {
      return verify(impl, c.message, c.signature, c.address);
    } catch {
      return false;
    }
  });
  return { valid, impl };
}
