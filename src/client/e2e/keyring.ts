/**
 * This device's keys in its storage: the device identity (made and vouched for on first use) and
 * the private halves of the key packages it published, found again by the reference a Welcome
 * names. A package's private half is kept a while after it was used (RETIRED_KEPT): in a cluster
 * two claims at the same instant can hand out the same package, and the second Welcome must still
 * open. The last-resort package (given out when the one-time ones run out) is never retired until
 * replaced.
 */
import { credentialOf, newDevice, type AccountSign, type DeviceKeys } from './device.js';
import { b64, capabilities, encodeKeyPackage, generateKeyPackageWithKey, hex, lifetime, makeKeyPackageRef, unb64, decodeKeyPackage,
  type CiphersuiteImpl, type KeyPackage, type PrivateKeyPackage } from './mls.js';
import type { E2EStorage } from './storage.js';

/** Used packages whose private halves are still kept. */
const RETIRED_KEPT = 64;

interface StoredDevice { account: string; id: string; signKey: string; publicKey: string; vouch: string }
interface StoredPackage { kp: string; init: string; hpke: string; lastResort?: true; usedAt?: number }

export interface OwnPackage { ref: string; kp: KeyPackage; priv: PrivateKeyPackage }

export class Keyring {
  private constructor(readonly device: DeviceKeys, private readonly storage: E2EStorage, private readonly cs: CiphersuiteImpl) {}

  /** The device kept in `storage` for `account`, or a new one vouched for by `sign`. */
  static async open(storage: E2EStorage, account: string, sign: AccountSign, cs: CiphersuiteImpl): Promise<Keyring> {
    const kept = storage.get('device');
    const stored = kept === undefined ? undefined : JSON.parse(kept) as StoredDevice;
    if (stored?.account === account) {
      const device = { account, id: stored.id, signKey: unb64(stored.signKey)!, publicKey: unb64(stored.publicKey)!, vouch: stored.vouch };
      return new Keyring(device, storage, cs);
    }
    const d = await newDevice(account, sign, cs);
    storage.set('device', JSON.stringify({ account, id: d.id, signKey: b64(d.signKey), publicKey: b64(d.publicKey), vouch: d.vouch } satisfies StoredDevice));
    return new Keyring(d, storage, cs);
  }

  /** `n` new key packages of this device (their private halves kept), encoded for `keys/publish`. */
  async generate(n: number, lastResort = false): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const { kp: publicPackage, priv: privatePackage } = await this.unpublished();
      const ref = hex(await makeKeyPackageRef(publicPackage, this.cs.hash));
      const kp = encodeKeyPackage(publicPackage);
      if (lastResort) for (const k of this.storage.keys('kp:')) if (this.read(k)?.lastResort) this.storage.delete(k);
      this.storage.set(`kp:${ref}`, JSON.stringify({ kp, init: b64(privatePackage.initPrivateKey), hpke: b64(privatePackage.hpkePrivateKey), ...(lastResort ? { lastResort: true as const } : {}) } satisfies StoredPackage));
      out.push(kp);
    }
    return out;
  }

  /** A new key package of this device, kept nowhere (`generate` keeps and encodes what it makes; a group this device creates takes one for its own leaf). */
  unpublished(): Promise<{ kp: KeyPackage; priv: PrivateKeyPackage }> {
    return generateKeyPackageWithKey(credentialOf(this.device), capabilities(), lifetime, [],
      { signKey: this.device.signKey, publicKey: this.device.publicKey }, this.cs).then((r) => ({ kp: r.publicPackage, priv: r.privatePackage }));
  }

  /** Whether a last-resort package of this device is kept. */
  hasLastResort(): boolean {
    return this.storage.keys('kp:').some((k) => this.read(k)?.lastResort === true);
  }

  /** The package one of `refs` (a Welcome's new members) names, if it is this device's. */
  find(refs: Uint8Array[]): OwnPackage | undefined {
    for (const r of refs) {
      const ref = hex(r);
      const s = this.read(`kp:${ref}`);
      const kp = s === undefined ? undefined : decodeKeyPackage(s.kp);
      if (s === undefined || kp === undefined) continue;
      return { ref, kp, priv: { initPrivateKey: unb64(s.init)!, hpkePrivateKey: unb64(s.hpke)!, signaturePrivateKey: this.device.signKey } };
    }
    return undefined;
  }

  /** A package was used to join: retired (kept a while), unless it is the last resort. */
  used(ref: string): void {
    const s = this.read(`kp:${ref}`);
    if (s === undefined || s.lastResort || s.usedAt !== undefined) return;
    this.storage.set(`kp:${ref}`, JSON.stringify({ ...s, usedAt: Date.now() }));
    const retired = this.storage.keys('kp:').map((k) => [k, this.read(k)?.usedAt] as const).filter((e): e is readonly [string, number] => e[1] !== undefined);
    if (retired.length <= RETIRED_KEPT) return;
    retired.sort((a, b) => a[1] - b[1]);
    for (const [k] of retired.slice(0, retired.length - RETIRED_KEPT)) this.storage.delete(k);
  }

  private read(key: string): StoredPackage | undefined {
    const v = this.storage.get(key);
    try { return v === undefined ? undefined : JSON.parse(v) as StoredPackage; } catch { return undefined; }
  }
}
