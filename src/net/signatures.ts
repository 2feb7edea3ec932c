/**
 * Signature checks for sign-in, run on a piscina pool of worker threads (stateless CPU work).
 * Signatures are hex strings of 64 (sr25519, ed25519) or 65 (ecdsa) bytes, with an optional
 * one-byte type prefix as @polkadot/keyring's multi-signatures have.
 */
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { SignatureCheck } from './signature-task';

const HEX_SIG = /^0x[0-9a-fA-F]{128,132}$/;

export class SignatureChecker {
  private readonly pool: Piscina;

  constructor(threads = Math.max(1, availableParallelism())) {
    this.pool = new Piscina({
      filename: join(__dirname, 'signature-task.js'),
      minThreads: 1,
      maxThreads: threads,
      idleTimeout: 60_000,
    });
  }

  /** True when `signature` signs `message` by `address`'s key; malformed input is simply false. */
  async verify(message: string, signature: string, address: string): Promise<boolean> {
    if (!HEX_SIG.test(signature)) return false;
    return (await this.pool.run({ message, signature, address } satisfies SignatureCheck)) as boolean;
  }

  get queued(): number { return this.pool.queueSize; }

  async close(): Promise<void> { await this.pool.destroy(); }
}
