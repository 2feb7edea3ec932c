/**
 * Signature checks for sign-in, run on a piscina pool of worker threads sized to the cores, each
 * with the WebAssembly verifier (verify-core.ts; pure JS only when the WebAssembly cannot start).
 * One check per pool task: bench/verify.ts measured batching 8 or 32 checks per task at 1.00-1.08x
 * of one per task (a task's overhead is small beside a verification), so the checker does not batch.
 *
 * Waiting sign-ins are bounded (`--signin-queue`): past the bound `verify` throws `QueueFull` at
 * once, with a hint of when to retry, instead of letting a reconnect storm pile up in memory and
 * in everyone's latency.
 */
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { SignatureAnswer, SignatureTask } from './signature-task';
import type { Impl } from './verify-core';

const HEX_SIG = /^0x(?:[0-9a-fA-F]{2}){64,66}$/;

/** The sign-in queue is full: retry after `retryAfterMs`. */
export class QueueFull extends Error {
  constructor(readonly retryAfterMs: number) {
    super(`the sign-in queue is full, retry in ${retryAfterMs} ms`);
    this.name = 'QueueFull';
  }
}

export interface CheckerOptions {
  threads?: number;
  /** Most sign-ins waiting for or in verification at once. */
  maxWaiting?: number;
}

export class SignatureChecker {
  private readonly pool: Piscina;
  readonly threads: number;
  private readonly maxWaiting: number;
  private waitingNow = 0;
  /** Moving average of the time a check spends in the pool (waiting and running), ms. */
  private avgMs = 2;
  /** Which implementation the workers answered with last (wasm, or js as the fallback). */
  impl: Impl | undefined;
  readonly figures = { checked: 0, refusedFull: 0, waitMsTotal: 0, waitMsMax: 0 };

  constructor(opts: CheckerOptions = {}) {
    this.threads = Math.max(1, opts.threads ?? availableParallelism());
    this.maxWaiting = Math.max(1, opts.maxWaiting ?? 2000);
    this.pool = new Piscina({
      filename: join(__dirname, 'signature-task.js'),
      // Every worker up (and its WebAssembly started) before the first storm, not during it.
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: 60_000,
    });
  }

  /**
   * True when `signature` signs `message` by `address`'s key; malformed input is simply false.
   * Throws `QueueFull` when `--signin-queue` sign-ins are already waiting.
   */
  async verify(message: string, signature: string, address: string): Promise<boolean> {
    if (!HEX_SIG.test(signature)) return false;
    if (this.waitingNow >= this.maxWaiting) {
      this.figures.refusedFull++;
      throw new QueueFull(this.retryAfterMs());
    }
    this.waitingNow++;
    const t0 = performance.now();
    try {
      const a = (await this.pool.run({ checks: [{ message, signature, address }] } satisfies SignatureTask)) as SignatureAnswer;
      this.impl = a.impl;
      return a.valid[0] === true;
    } finally {
      this.waitingNow--;
      const ms = performance.now() - t0;
      this.avgMs += (ms - this.avgMs) / 32;
      this.figures.checked++;
      this.figures.waitMsTotal += ms;
      if (ms > this.figures.waitMsMax) this.figures.waitMsMax = ms;
    }
  }

  /**
   * When to retry: the time a sign-in spends in the queue now (moving average), within 100 ms..10 s.
   * Clients should add jitter so that the refused do not all come back at once.
   */
  retryAfterMs(): number {
    return Math.round(Math.min(10_000, Math.max(100, this.avgMs)));
  }

  /** Sign-ins waiting for or in verification. */
  get waiting(): number { return this.waitingNow; }

  get queued(): number { return this.pool.queueSize; }

  async close(): Promise<void> { await this.pool.destroy(); }
}
