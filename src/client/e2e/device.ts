/**
 * A device's keys and the account's word for them. Each device (an SDK instance with its storage,
 * a CLI key file, a browser profile) has its own Ed25519 signature key, which signs its MLS key
 * packages and leaves. The account's own key (sr25519/ed25519, the one that signs in) signs a
 * **vouch**: a short text naming the account and the device's key. The vouch travels inside the
 * device's MLS credential, so every member checks it, for every leaf of every group, before it
 * trusts the leaf (`authService`): the server, which hands out key packages, cannot put a device
 * of its own in a group, because it cannot sign for the account. (XMTP binds a wallet to its
 * installation keys the same way.)
 */
import type { AuthenticationService } from 'ts-mls';
import { fromUtf8, hex, utf8, type CiphersuiteImpl, type Credential } from './mls.js';

/** Checks that `signature` (hex) is `account`'s signature of `text`. */
export type VouchVerifier = (text: string, signature: string, account: string) => boolean | Promise<boolean>;
/** Signs a text with the account's key and returns the hex signature (the SDK's SignFn). */
export type AccountSign = (text: string) => Promise<string>;

export interface DeviceKeys {
  account: string;
  /** The device id: the hex of its signature public key. */
  id: string;
  signKey: Uint8Array;
  publicKey: Uint8Array;
  /** The account's signature of `vouchText(account, id)`. */
  vouch: string;
}

/** What the account signs to vouch for a device. */
export function vouchText(account: string, device: string): string {
  return `IMGC end-to-end device\naccount: ${account}\ndevice: ${device}`;
}

/** A new device of `account`, vouched for by its key. */
export async function newDevice(account: string, sign: AccountSign, cs: CiphersuiteImpl): Promise<DeviceKeys> {
  const { signKey, publicKey } = await cs.signature.keygen();
  const id = hex(publicKey);
  return { account, id, signKey, publicKey, vouch: await sign(vouchText(account, id)) };
}

/** The MLS credential of a device: a basic credential whose identity carries the account and the vouch. */
export function credentialOf(d: Pick<DeviceKeys, 'account' | 'vouch'>): Credential {
  return { credentialType: 'basic', identity: utf8(JSON.stringify({ a: d.account, v: d.vouch })) };
}

/** The account and vouch a credential carries, or undefined when it is not one of ours. */
export function readCredential(c: Credential): { account: string; vouch: string } | undefined {
  if (c.credentialType !== 'basic') return undefined;
  try {
    const o = JSON.parse(fromUtf8(c.identity)) as { a?: unknown; v?: unknown };
    return typeof o.a === 'string' && typeof o.v === 'string' ? { account: o.a, vouch: o.v } : undefined;
  } catch { return undefined; }
}

/** Whether a credential's vouch is its account's signature over this signature key. */
export async function vouched(c: Credential, signaturePublicKey: Uint8Array, verify: VouchVerifier): Promise<boolean> {
  const who = readCredential(c);
  if (who === undefined) return false;
  try { return await verify(vouchText(who.account, hex(signaturePublicKey)), who.vouch, who.account); } catch { return false; }
}

/** The check ts-mls runs on every credential it meets (key packages, welcomes' trees, commits). */
export function authService(verify: VouchVerifier): AuthenticationService {
  // Vouches are checked once per (credential, key): a group's tree repeats them at every epoch.
  const seen = new Map<string, boolean>();
  return {
    async validateCredential(c, key) {
      const k = `${hex(key)}:${c.credentialType === 'basic' ? hex(c.identity) : ''}`;
      const known = seen.get(k);
      if (known !== undefined) return known;
      const ok = await vouched(c, key, verify);
      if (seen.size >= 10_000) seen.clear();
      seen.set(k, ok);
      return ok;
    },
  };
}
