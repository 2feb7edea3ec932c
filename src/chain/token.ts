/**
 * Verification tokens: a statement by this server that an account proved control by payment, which
 * anyone holding the server's address can check offline, with no call back to the server.
 *
 *   token = base64url(JSON(payload)) + "." + hex(signature over the ASCII of the first part)
 *
 * The signature covers the encoded text itself, so no re-serialisation question arises when checking,
 * and changing any character of either part breaks it. The key is ed25519: deterministic signatures
 * and a pure-JS fallback when the WASM crypto is not initialised.
 */
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs, writePrivateFileAtomic } from '../files';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { hexToU8a, isHex, stringToU8a, u8aToHex, u8aEq } from '@polkadot/util';
import { cryptoWaitReady, decodeAddress, randomAsU8a, signatureVerify } from '@polkadot/util-crypto';

export interface ProofSummary {
  amount: string;
  blockNumber: number;
  blockHash: string;
  eventIndex: number;
}

export interface TokenPayload {
  account: string;
  proof: ProofSummary;
  /** Issued at, ms since the epoch. */
  iat: number;
  /** Expires at, ms since the epoch. */
  exp: number;
  /** The issuing server's address; the key that signed. */
  iss: string;
}

export type TokenCheck =
  | { ok: true; payload: TokenPayload }
  | { ok: false; reason: 'malformed' | 'bad-signature' | 'wrong-issuer' | 'expired' | 'not-yet-valid' };

export const KEY_FILE = 'server-key.seed';
/** Clock difference tolerated for `iat` in the future. */
const SKEW_MS = 60_000;
const B64URL = /^[A-Za-z0-9_-]+$/;
const SIG_HEX = /^[0-9a-f]{128}$/;

/** Signs `payload`; `iss` is the pair's address (given one must agree). */
export function issueToken(pair: KeyringPair, payload: Omit<TokenPayload, 'iss'> & { iss?: string }): string {
  if (payload.iss !== undefined && payload.iss !== pair.address) throw new Error('iss must be the signing pair\'s address');
  if (!(payload.exp > payload.iat)) throw new RangeError('exp must be after iat');
  const full: TokenPayload = {
    account: payload.account,
    proof: {
      amount: payload.proof.amount,
      blockNumber: payload.proof.blockNumber,
      blockHash: payload.proof.blockHash,
      eventIndex: payload.proof.eventIndex,
    },
    iat: payload.iat,
    exp: payload.exp,
    iss: pair.address,
  };
  const body = Buffer.from(JSON.stringify(full), 'utf8').toString('base64url');
  return `${body}.${u8aToHex(pair.sign(stringToU8a(body)), -1, false)}`;
}

/** Checks a token against the server address it claims to come from, at time `now` (ms). */
export function verifyToken(token: string, serverAddress: string, now: number): TokenCheck {
  if (typeof token !== 'string' || token.length > 8192) return { ok: false, reason: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 2) return { ok: false, reason: 'malformed' };
  const [body, sig] = parts as [string, string];
  if (!B64URL.test(body) || !SIG_HEX.test(sig)) return { ok: false, reason: 'malformed' };
  let verified: boolean;
  try {
    verified = signatureVerify(stringToU8a(body), hexToU8a(`0x${sig}`), serverAddress).isValid;
  } catch {
    return { ok: false, reason: 'bad-signature' };
  }
  if (!verified) return { ok: false, reason: 'bad-signature' };
  const payload = parsePayload(Buffer.from(body, 'base64url').toString('utf8'));
  if (!payload) return { ok: false, reason: 'malformed' };
  if (!sameKey(payload.iss, serverAddress)) return { ok: false, reason: 'wrong-issuer' };
  if (now >= payload.exp) return { ok: false, reason: 'expired' };
  if (payload.iat > now + SKEW_MS) return { ok: false, reason: 'not-yet-valid' };
  return { ok: true, payload };
}

/**
 * The server's signing key, kept as a 32-byte seed in `<dir>/server-key.seed` (mode 0600) so the
 * address, which verifiers pin, survives restarts. Created on first use.
 */
export async function loadOrCreateServerKey(dir: string, ss58Format = 42): Promise<KeyringPair> {
  await cryptoWaitReady();
  const file = join(dir, KEY_FILE);
  let seedHex: string;
  try {
    seedHex = readFileSync(file, 'utf8').trim();
    // A seed others can read is a key others have: tighten it rather than keep serving with it silently open.
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    makeDirs(dir);
    seedHex = u8aToHex(randomAsU8a(32));
    writePrivateFileAtomic(file, `${seedHex}\n`);
  }
  if (!isHex(seedHex, 256)) throw new Error(`${file} does not hold a 32-byte hex seed`);
  return serverKeyFromSeed(seedHex, ss58Format);
}

/** The server key of a 32-byte hex seed (in a cluster the seed is the cluster's, so every node signs as one issuer). */
export async function serverKeyFromSeed(seedHex: string, ss58Format = 42): Promise<KeyringPair> {
  await cryptoWaitReady();
  if (!isHex(seedHex, 256)) throw new Error('the server key seed is not 32 bytes of hex');
  return new Keyring({ type: 'ed25519', ss58Format }).addFromSeed(hexToU8a(seedHex));
}

/** A new random seed for `serverKeyFromSeed`, as 0x-prefixed hex. */
export function newServerKeySeed(): string { return u8aToHex(randomAsU8a(32)); }

function sameKey(a: string, b: string): boolean {
  try {
    return u8aEq(decodeAddress(a), decodeAddress(b));
  } catch {
    return false;
  }
}

function parsePayload(text: string): TokenPayload | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const p = v as Record<string, unknown>;
  const proof = p['proof'] as Record<string, unknown> | undefined;
  const ok = typeof p['account'] === 'string' && typeof p['iss'] === 'string'
    && Number.isSafeInteger(p['iat']) && Number.isSafeInteger(p['exp'])
    && !!proof && typeof proof === 'object'
    && typeof proof['amount'] === 'string' && Number.isSafeInteger(proof['blockNumber'])
    && typeof proof['blockHash'] === 'string' && Number.isSafeInteger(proof['eventIndex']);
  return ok ? (v as TokenPayload) : undefined;
}
