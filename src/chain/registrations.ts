/**
 * The pending-registration book of verification by payment.
 *
 * An account asks to be verified (`reg`); it is given an exact amount, unique among the pending ones,
 * to pay from itself to the server's target address. A finalized transfer (`match`) with that exact
 * amount from that account to the target before the entry expires verifies the account for good.
 *
 * The book is plain JSON state changed only by `apply(event)`. The decision functions (`reg`, `match`,
 * `sweep`) compute their answer, apply the events it implies and return them, so the caller can
 * journal exactly those events and rebuild the book from a snapshot plus the journal. Randomness
 * lives in the events (the chosen amount), so replay is deterministic. Amounts are decimal strings
 * of base-unit integers in the state and bigints in arithmetic; never floats.
 */
import { randomBytes } from 'node:crypto';
import { decodeAddress } from '@polkadot/util-crypto';
import { u8aToHex } from '@polkadot/util';
import { toBaseUnits } from './units';
import type { Transfer } from './watcher';

export interface PendingEntry {
  account: string;
  /** Base units, decimal string. */
  amount: string;
  createdAt: number;
  expiresAt: number;
}

export interface Proof {
  account: string;
  amount: string;
  blockNumber: number;
  blockHash: string;
  eventIndex: number;
  /** When the service saw the finalized transfer (ms). */
  at: number;
}

export interface RegState {
  v: 1;
  pending: Record<string, PendingEntry>;
  verified: Record<string, Proof>;
}

export type RegEvent =
  | { t: 'pending'; entry: PendingEntry }
  | { t: 'verified'; proof: Proof }
  | { t: 'expired'; account: string };

/** What the watcher reports; only these fields matter here. */
/** A finalized transfer, as the chain watcher reports it. */
export type TransferSeen = Transfer;

export type RegResult =
  | { kind: 'pending'; entry: PendingEntry; fresh: boolean; events: RegEvent[] }
  | { kind: 'verified'; proof: Proof; events: RegEvent[] }
  /** Every amount of the range is taken by a live entry. */
  | { kind: 'exhausted'; events: RegEvent[] };

export type MatchResult =
  | { kind: 'verified'; proof: Proof; events: RegEvent[] }
  /** From a pending account to the target, but not the amount it was given. */
  | { kind: 'wrong-amount'; account: string; expected: string; got: string; events: RegEvent[] }
  | { kind: 'none'; events: RegEvent[] };

export interface RegConfig {
  /** The address that must receive the payment (any SS58 prefix; compared by public key). */
  target: string;
  /** Inclusive range of amounts handed out, in base units. */
  minAmount: bigint;
  maxAmount: bigint;
  /** Lifetime of a pending entry; default 10 minutes. */
  ttlMs?: number;
  /** Uniform random integer in [min, max]; default crypto-strong. Tests may pin it. */
  random?: (min: bigint, max: bigint) => bigint;
}

export const DEFAULT_TTL_MS = 10 * 60_000;

/**
 * The default range: 1 to 1000 milli-units (0.001 .. 1 unit), every base-unit digit random, so with
 * 12 decimals there are ~10^12 possible amounts and collisions between live entries are negligible.
 */
export function defaultAmountRange(decimals: number): { minAmount: bigint; maxAmount: bigint } {
  const milli = decimals >= 3 ? 10n ** BigInt(decimals - 3) : 1n;
  return { minAmount: milli, maxAmount: 1000n * milli };
}

/** Uniform in [min, max] by rejection sampling over whole bytes (no modulo bias). */
export function secureRandomBetween(min: bigint, max: bigint): bigint {
  const span = max - min + 1n;
  if (span <= 0n) throw new RangeError('empty range');
  const bytes = Math.ceil(span.toString(16).length / 2) + 1;
  const limit = 1n << BigInt(bytes * 8);
  const accept = limit - (limit % span);
  for (;;) {
    const r = BigInt(`0x${randomBytes(bytes).toString('hex')}`);
    if (r < accept) return min + (r % span);
  }
}

const ATTEMPTS = 64;

function keyOf(address: string): string | undefined {
  try {
    return u8aToHex(decodeAddress(address));
  } catch {
    return undefined;
  }
}

export class Registrations {
  private readonly s: RegState;
  private readonly targetKey: string;
  private readonly ttlMs: number;
  private readonly random: (min: bigint, max: bigint) => bigint;
  /** Public key → pending account, derived from the state: the chain may use another SS58 prefix. */
  private readonly byKey = new Map<string, string>();

  constructor(private readonly cfg: RegConfig, snapshot?: RegState) {
    const key = keyOf(cfg.target);
    if (!key) throw new RangeError('target is not a valid address');
    if (cfg.minAmount < 1n || cfg.maxAmount < cfg.minAmount) throw new RangeError('need 1 <= minAmount <= maxAmount');
    this.targetKey = key;
    this.ttlMs = cfg.ttlMs ?? DEFAULT_TTL_MS;
    this.random = cfg.random ?? secureRandomBetween;
    this.s = snapshot ? structuredClone(snapshot) : { v: 1, pending: {}, verified: {} };
    if (this.s.v !== 1) throw new Error(`unknown registrations state version ${String(this.s.v)}`);
    for (const e of Object.values(this.s.pending)) this.index(e.account);
  }

  /** A deep copy of the state, plain JSON. */
  state(): RegState {
    return structuredClone(this.s);
  }

  /** The only mutation. Idempotent for replay: re-applying an event leaves the same state. */
  apply(ev: RegEvent): void {
    switch (ev.t) {
      case 'pending':
        toBaseUnits(ev.entry.amount);
        this.s.pending[ev.entry.account] = { ...ev.entry };
        this.index(ev.entry.account);
        break;
      case 'verified':
        this.drop(ev.proof.account);
        this.s.verified[ev.proof.account] = { ...ev.proof };
        break;
      case 'expired':
        this.drop(ev.account);
        break;
    }
  }

  proofOf(account: string): Proof | undefined {
    const p = this.s.verified[account];
    return p && { ...p };
  }

  pendingOf(account: string, now: number): PendingEntry | undefined {
    const e = this.s.pending[account];
    return e && now < e.expiresAt ? { ...e } : undefined;
  }

  /** Asks to verify `account` (already validated SS58). */
  reg(account: string, now: number): RegResult {
    const proof = this.s.verified[account];
    if (proof) return { kind: 'verified', proof: { ...proof }, events: [] };
    const live = this.pendingOf(account, now);
    if (live) return { kind: 'pending', entry: live, fresh: false, events: [] };
    if (!keyOf(account)) throw new RangeError('account is not a valid address');

    const taken = new Set<bigint>();
    for (const e of Object.values(this.s.pending)) if (now < e.expiresAt) taken.add(BigInt(e.amount));
    const amount = this.pick(taken);
    if (amount === undefined) return { kind: 'exhausted', events: [] };
    const entry: PendingEntry = { account, amount: amount.toString(), createdAt: now, expiresAt: now + this.ttlMs };
    const events: RegEvent[] = [{ t: 'pending', entry }];
    events.forEach((e) => this.apply(e));
    return { kind: 'pending', entry: { ...entry }, fresh: true, events };
  }

  /** Decides what a finalized transfer means for the book. */
  match(t: TransferSeen, now: number): MatchResult {
    if (keyOf(t.to) !== this.targetKey) return { kind: 'none', events: [] };
    const fromKey = keyOf(t.from);
    const account = fromKey === undefined ? undefined : this.byKey.get(fromKey);
    const entry = account === undefined ? undefined : this.s.pending[account];
    if (!account || !entry) return { kind: 'none', events: [] };
    if (now >= entry.expiresAt) {
      // Too late: the entry is gone, and its amount may be handed out again.
      const events: RegEvent[] = [{ t: 'expired', account }];
      events.forEach((e) => this.apply(e));
      return { kind: 'none', events };
    }
    const expected = BigInt(entry.amount);
    if (t.amount !== expected) {
      return { kind: 'wrong-amount', account, expected: entry.amount, got: t.amount.toString(), events: [] };
    }
    const proof: Proof = {
      account,
      amount: entry.amount,
      blockNumber: t.blockNumber,
      blockHash: t.blockHash,
      eventIndex: t.eventIndex,
      at: now,
    };
    const events: RegEvent[] = [{ t: 'verified', proof }];
    events.forEach((e) => this.apply(e));
    return { kind: 'verified', proof: { ...proof }, events };
  }

  /** Removes expired entries (housekeeping; expiry is enforced by `match` whether or not this runs). */
  sweep(now: number): RegEvent[] {
    const events: RegEvent[] = Object.values(this.s.pending)
      .filter((e) => now >= e.expiresAt)
      .map((e) => ({ t: 'expired', account: e.account }));
    events.forEach((e) => this.apply(e));
    return events;
  }

  private pick(taken: Set<bigint>): bigint | undefined {
    const { minAmount, maxAmount } = this.cfg;
    const span = maxAmount - minAmount + 1n;
    if (BigInt(taken.size) >= span) return undefined;
    for (let i = 0; i < ATTEMPTS; i++) {
      const a = this.random(minAmount, maxAmount);
      if (a < minAmount || a > maxAmount) throw new RangeError('random amount out of range');
      if (!taken.has(a)) return a;
    }
    // A crowded small range: take the first free amount after a random start rather than loop forever.
    const start = this.random(minAmount, maxAmount) - minAmount;
    for (let i = 0n; i < span; i++) {
      const a = minAmount + ((start + i) % span);
      if (!taken.has(a)) return a;
    }
    return undefined;
  }

  private index(account: string): void {
    const k = keyOf(account);
    if (k) this.byKey.set(k, account);
  }

  private drop(account: string): void {
    delete this.s.pending[account];
    const k = keyOf(account);
    if (k && this.byKey.get(k) === account) this.byKey.delete(k);
  }
}
