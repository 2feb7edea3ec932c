/**
 * The client's randomness: the `mid` of a send and the jitter of its delays. Apart so that the
 * transport, the outbox and the group calls draw on one definition of each.
 */

/** A fresh `mid`: the time (base 36) and 9 random bytes, unique across devices and restarts. */
export function randomId(): string {
  const b = new Uint8Array(9);
  globalThis.crypto.getRandomValues(b);
  let s = '';
  for (const x of b) s += x.toString(36).padStart(2, '0');
  return `${Date.now().toString(36)}-${s}`;
}

/** `ms` with jitter: a random delay between half of it and all of it (spreads retries of many clients). */
export function jittered(ms: number): number {
  return Math.round(ms / 2 + Math.random() * ms / 2);
}
