/**
 * Waiting helpers for the chain tests: every wait has a deadline, so a broken watcher fails the test
 * with a message instead of hanging it.
 */
import type { EventEmitter } from 'node:events';
import pino from 'pino';

export const silent = pino({ level: 'silent' });

/** Resolves when `check()` is true, polling every 10 ms; rejects after `ms`. */
export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Records every emission of `event` from now on. */
export function record<T>(emitter: EventEmitter, event: string): T[] {
  const seen: T[] = [];
  emitter.on(event, (v: T) => seen.push(v));
  return seen;
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
