/**
 * The sending side: the records a message becomes. A device sends in a conversation through its
 * own MLS group, of which it is the only committer (docs/e2e.md, "one per sending device"). Before
 * each message the group is brought in step with the conversation: `plan` finds the devices to
 * add and remove (the members now, and when due the key directory), `commit` makes the one commit
 * (with the Welcome of the added), and the message is encrypted in the epoch after it.
 */
import { ClientCode, Code, ImgcError } from '../errors.js';
import { randomId } from '../random.js';
import type { DeviceContext } from './context.js';
import { convKey, convTag, TAG_BYTES, type ConvRef } from './conversation.js';
import { readCredential } from './device.js';
import { claim, type Claimed, type ClaimResult } from './directory.js';
import { E2E_TAG, split, type Envelope, type Part } from './envelope.js';
import {
  b64, createApplicationMessage, createCommit, createGroup, encodeAny, encodePrivate, encodeWelcome, hex, leaves, utf8,
  type ClientState, type Proposal,
} from './mls.js';

/** How long a conversation's devices are taken as unchanged before a send asks again (ms; `devicesTtlMs`). */
const DEVICES_TTL_MS = 60_000;

/** What a send changes in its group: the devices to add (their packages) and to remove (their leaves). */
interface Plan { state: ClientState | undefined; adds: Claimed[]; removes: Array<{ leaf: number }> }

/** A device in a group other than this one. */
interface InGroup { account: string; device: string; leaf: number }

const noClaim = (): ClaimResult => ({ ok: [], refused: [], devices: new Map() });

export class Sender {
  /** When each conversation's devices were last asked for. */
  private readonly checked = new Map<string, number>();
  /** Group members as the server last said. */
  private readonly members = new Map<string, string[]>();

  constructor(private readonly d: DeviceContext) {}

  /** The records to post for `msg` in `conv` (the last one the message), or undefined: not encryptable. */
  async seal(conv: ConvRef, msg: unknown): Promise<Array<Envelope | Part> | undefined> {
    const ck = convKey(this.d.host.account, conv);
    const plan = await this.plan(conv, ck);
    if (plan === undefined) return undefined;
    const { state, env } = await this.commit(ck, plan);
    const app = await createApplicationMessage(state, utf8(JSON.stringify({ m: msg })), this.d.cs);
    env.m = encodePrivate(app.privateMessage);
    this.d.groups.keep(env.g, app.newState);
    this.d.storage.set(this.outKey(conv), env.g);
    this.d.storage.set(`enc:${ck}`, '1');
    await this.d.texts.put(env.m, msg, this.d.cs);
    return split(env, randomId());
  }

  /** A post failed for good: the group may be ahead of what others saw, so the next send begins another. */
  postFailed(conv: ConvRef): void {
    const k = this.outKey(conv);
    const gid = this.d.storage.get(k);
    this.d.storage.delete(k);
    if (gid !== undefined) this.d.groups.forget(gid);
  }

  /** A group's membership changed (every group's without `group`): the next send asks again. */
  membershipChanged(group?: string): void {
    if (group === undefined) {
      this.members.clear();
      for (const k of this.checked.keys()) if (k.startsWith('g:')) this.checked.delete(k);
      return;
    }
    this.members.delete(group);
    this.checked.delete(`g:${group}`);
  }

  /** Where the id of this device's group in `conv` is kept. */
  private outKey(conv: ConvRef): string {
    return `out:${convKey(this.d.host.account, conv)}`;
  }

  /** The accounts of a conversation, this one among them. */
  private async accountsOf(conv: ConvRef): Promise<string[]> {
    const me = this.d.host.account;
    if (!('group' in conv)) return [...new Set([me, conv.with])];
    let m = this.members.get(conv.group);
    if (m === undefined) {
      m = await this.d.host.groupMembers(conv.group);
      this.members.set(conv.group, m);
    }
    return [...new Set([...m, me])];
  }

  /**
   * What this device's group in `conv` needs before the message: the devices to add and remove,
   * from the members now and (when due) the directory; undefined when it cannot be encrypted.
   */
  private async plan(conv: ConvRef, ck: string): Promise<Plan | undefined> {
    const accounts = await this.accountsOf(conv);
    const gid = this.d.storage.get(this.outKey(conv));
    const state = gid === undefined ? undefined : this.d.groups.get(gid);
    const inGroup = state === undefined ? [] : this.devicesIn(state);
    const claimed = this.due(state, ck, accounts, inGroup) ? await this.claim(accounts, inGroup) : noClaim();
    // Out: the devices of accounts no longer members, and devices their account removed (lost).
    const removes = inGroup.filter((d) => !accounts.includes(d.account) || claimed.devices.get(d.account)?.includes(d.device) === false);
    const staying = inGroup.filter((d) => !removes.includes(d));
    const covered = new Set([this.d.host.account, ...staying.map((d) => d.account), ...claimed.ok.map((c) => c.account)]);
    const missing = accounts.filter((a) => !covered.has(a));
    if (missing.length > 0) return this.notEncryptable(ck, missing, claimed.refused);
    this.checked.set(ck, Date.now());
    return { state, adds: claimed.ok.filter((c) => c.device !== this.d.keys.device.id), removes };
  }

  /** Whether to ask the directory: a new group, a member with no device in it yet, or now and then for new devices. */
  private due(state: ClientState | undefined, ck: string, accounts: string[], inGroup: InGroup[]): boolean {
    if (state === undefined) return true;
    const present = new Set([this.d.host.account, ...inGroup.map((d) => d.account)]);
    if (!accounts.every((a) => present.has(a))) return true;
    return Date.now() - (this.checked.get(ck) ?? 0) >= (this.d.opts.devicesTtlMs ?? DEVICES_TTL_MS);
  }

  /** The group (made if new) after the plan's commit, and the record that carries the commit and Welcome. */
  private async commit(ck: string, plan: Plan): Promise<{ state: ClientState; env: Envelope }> {
    const state = plan.state ?? await this.newGroup(ck);
    const env: Envelope = { e2e: E2E_TAG, g: b64(state.groupContext.groupId) };
    if (plan.state !== undefined && plan.adds.length === 0 && plan.removes.length === 0) return { state, env };
    const proposals: Proposal[] = [
      ...plan.removes.map((d): Proposal => ({ proposalType: 'remove', remove: { removed: d.leaf } })),
      ...plan.adds.map((c): Proposal => ({ proposalType: 'add', add: { keyPackage: c.kp } })),
    ];
    const r = await createCommit({ state, cipherSuite: this.d.cs }, { extraProposals: proposals, ratchetTreeExtension: true });
    env.c = encodeAny(r.commit);
    if (r.welcome) env.w = encodeWelcome(r.welcome);
    return { state: r.newState, env };
  }

  /** The directory's packages; none from a server that has no directory (41400: an older server). */
  private async claim(accounts: string[], have: InGroup[]): Promise<ClaimResult> {
    try {
      return await claim(this.d.host, accounts, [...have, { account: this.d.host.account, device: this.d.keys.device.id }], this.d.config.authService);
    } catch (e) {
      if (e instanceof ImgcError && e.code === Code.INVALID_REQUEST) return noClaim();
      throw e;
    }
  }

  /** No device keys for `missing`: plaintext, unless the conversation was encrypted or keys were refused. */
  private notEncryptable(ck: string, missing: string[], refused: Array<{ account: string; why: string }>): undefined {
    const bad = refused.find((r) => missing.includes(r.account));
    if (bad) throw new ImgcError(ClientCode.E2E_BAD_VOUCH, `the device keys of ${bad.account} are refused: ${bad.why}; nothing was sent`);
    if (this.d.storage.get(`enc:${ck}`) !== undefined) {
      throw new ImgcError(ClientCode.E2E_NOT_ENCRYPTED, `${missing.join(', ')} ha${missing.length > 1 ? 've' : 's'} no device keys and this conversation was encrypted: not sending in plaintext`);
    }
    return undefined;
  }

  /**
   * A new group of this device in `ck`. Its id binds it to the conversation (the key's hash, which
   * every reader checks) and is otherwise random; short, since every MLS message carries it.
   */
  private async newGroup(ck: string): Promise<ClientState> {
    const id = new Uint8Array(2 * TAG_BYTES);
    id.set(await convTag(ck, this.d.cs));
    id.set(this.d.cs.rng.randomBytes(TAG_BYTES), TAG_BYTES);
    const own = await this.d.keys.unpublished();
    return createGroup(id, own.kp, own.priv, [], this.d.cs, this.d.config);
  }

  /** The other devices in a group, with their accounts and leaves. */
  private devicesIn(s: ClientState): InGroup[] {
    const out: InGroup[] = [];
    for (const { index, leaf } of leaves(s)) {
      const device = hex(leaf.signaturePublicKey);
      const who = readCredential(leaf.credential);
      if (who && device !== this.d.keys.device.id) out.push({ account: who.account, device, leaf: index });
    }
    return out;
  }
}
