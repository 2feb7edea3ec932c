/**
 * The server's directory of key packages (`cat: "keys"`, docs/protocol.md): what a device
 * publishes, and what a sender claims to add other devices to its group. The server holds them
 * without reading them; every package is checked here (its signature, its vouch, that it is the
 * device and account it is listed as) before it is used.
 */
import { KeyWire } from '../../protocol/key-wire.js';
import type { Requester } from '../requests.js';
import type { AuthenticationService } from 'ts-mls';
import { readCredential } from './device.js';
import { decodeKeyPackage, hex, type KeyPackage } from './mls.js';

/** Accounts per `claim` request (the server's bound). */
const CLAIM_ACCOUNTS = KeyWire.claimAccounts;

export interface Claimed { account: string; device: string; kp: KeyPackage }
/** A listed package that is not what it says (a bad vouch, another device's, not a key package). */
export interface Refused { account: string; device: string; why: string }

export interface ClaimResult {
  ok: Claimed[];
  refused: Refused[];
  /** Every device each account has on the server now (absent: the server did not say). */
  devices: Map<string, string[]>;
}

interface Listed { account: string; device: string; kp: string; lastResort?: boolean }

export async function publish(host: Requester, device: string, packages: string[], lastResort?: string): Promise<{ count: number; lastResort: boolean }> {
  const n = await host.request({ cat: 'keys', act: 'publish', device, packages, ...(lastResort ? { lastResort } : {}) }, true);
  return n.msg as { count: number; lastResort: boolean };
}

/** One-time packages this account's devices still have on the server. */
export async function count(host: Requester): Promise<Array<{ device: string; count: number; lastResort: boolean }>> {
  const n = await host.request({ cat: 'keys', act: 'count' }, true);
  return (n.msg as { devices?: Array<{ device: string; count: number; lastResort: boolean }> }).devices ?? [];
}

export async function remove(host: Requester, device: string): Promise<boolean> {
  const n = await host.request({ cat: 'keys', act: 'remove', device }, false);
  return (n.msg as { removed?: boolean }).removed === true;
}

/** Checks one listed package: well formed, signed by the device it is listed as, vouched by its account. */
async function check(l: Listed, auth: AuthenticationService): Promise<Claimed | Refused> {
  const kp = decodeKeyPackage(l.kp);
  if (kp === undefined) return { account: l.account, device: l.device, why: 'not a key package' };
  const who = readCredential(kp.leafNode.credential);
  if (who?.account !== l.account) return { account: l.account, device: l.device, why: 'its credential names another account' };
  if (hex(kp.leafNode.signaturePublicKey) !== l.device) return { account: l.account, device: l.device, why: 'it is another device\'s' };
  const ok = await auth.validateCredential(kp.leafNode.credential, kp.leafNode.signaturePublicKey);
  return ok ? { account: l.account, device: l.device, kp } : { account: l.account, device: l.device, why: 'its vouch is not the account\'s signature' };
}

/**
 * One package for each device of `accounts` (distinct) not in `have`, checked. The MLS signature
 * of each package is checked again by the library when it is added to a group.
 */
export async function claim(host: Requester, accounts: string[], have: Array<{ account: string; device: string }>, auth: AuthenticationService): Promise<ClaimResult> {
  const ok: Claimed[] = [];
  const refused: Refused[] = [];
  const devices = new Map<string, string[]>();
  for (let i = 0; i < accounts.length; i += CLAIM_ACCOUNTS) {
    const chunk = accounts.slice(i, i + CLAIM_ACCOUNTS);
    // Only the devices of this request's accounts (the server takes 8 a account at most).
    const except = have.filter((h) => chunk.includes(h.account)).map((h) => h.device);
    // Repeated after a reconnect: at worst a package more is used up.
    const n = await host.request({ cat: 'keys', act: 'claim', accounts: chunk, ...(except.length ? { except } : {}) }, true);
    const answer = n.msg as { packages?: Listed[]; devices?: Record<string, string[]> };
    const listed = answer.packages ?? [];
    for (const [a, list] of Object.entries(answer.devices ?? {})) if (chunk.includes(a) && Array.isArray(list)) devices.set(a, list);
    for (const l of listed) {
      const r = await check(l, auth);
      if ('kp' in r) ok.push(r); else refused.push(r);
    }
  }
  return { ok, refused, devices };
}
