/**
 * End-to-end encryption of a client's conversations: what `send` and `group.chat` post instead of
 * the text, and what a received record reads as. See docs/e2e.md for the design and its limits.
 *
 * **One MLS group per sending device and conversation.** A device encrypts what it sends in a
 * conversation through its own MLS group, whose only committer is itself, holding every device of
 * every current member (its own other devices too). Before each send it brings that group in step
 * with the server's membership: a member who left or was removed is removed by the commit that
 * travels with the message, a member added (or a new device) is added from a key package it
 * claims, and gets a Welcome in the same record. With one committer per group, commits never race,
 * so every reader applies them in the order of the conversation's log. A removed member's devices
 * are out of the group before the next message is encrypted, and cannot read it.
 *
 * Receivers keep a group for each sender device they were welcomed into, and read a record with the
 * group it names, checking that the group is this conversation's and that the MLS sender is the
 * account the server says sent it. MLS deletes each message key once used, so the text of what a
 * device read (and sent) is kept to read history again (`Plaintexts`).
 *
 * All group state changes run one at a time (`serial`), in the order records arrive.
 */
import { ClientCode, Code, ImgcError } from '../errors.js';
import { randomId } from '../random.js';
import type { Requester } from '../requests.js';
import type { E2EInfo, MessageFrame } from '../types.js';
import { authService, readCredential, type AccountSign, type VouchVerifier } from './device.js';
import { claim, count, publish, remove, type Claimed, type ClaimResult } from './directory.js';
import { E2E_TAG, isEnvelope, isPart, Parts, split, type Envelope, type Part } from './envelope.js';
import { Keyring } from './keyring.js';
import {
  b64, clientConfig, createApplicationMessage, createCommit, createGroup, decodePrivate, decodeWelcome, emptyPskIndex, encodeAny,
  encodePrivate, encodeWelcome, epochOf, fromUtf8, hex, joinGroup, leaves, loadState, openApplication, processPrivateMessage,
  saveState, suite, unb64, utf8, type CiphersuiteImpl, type ClientConfig, type ClientState, type Proposal,
} from './mls.js';
import { Plaintexts } from './plaintexts.js';
import { MemoryStorage, type E2EStorage } from './storage.js';

/** A conversation: a direct one with an account, or a group. */
export type ConvRef = { with: string } | { group: string };


/** What a received record is: a message to show, or part of the machinery (a commit, a part). */
export type Opened = { kind: 'message'; msg: unknown; e2e: E2EInfo } | { kind: 'hidden' };

export interface E2EOptions {
  /** Where the device keeps its keys and groups (default: memory, for the client's life). */
  storage?: E2EStorage;
  /** Checks an account's signature (the vouch of a device key). */
  verify: VouchVerifier;
  /**
   * How long a conversation's devices are taken as unchanged before a send asks the directory
   * again (ms, default 60,000): a new or removed device of a member is seen within it.
   */
  devicesTtlMs?: number;
  /** Texts of read and sent messages kept to read history again (default 5,000; a browser's quota may want fewer). */
  keptTexts?: number;
}

/** What the engine needs of the client. */
export interface E2EHost extends Requester {
  /** The account's signature of a text (vouches this device). */
  sign: AccountSign;
  /** The accounts of a group now (the server's record). */
  groupMembers(id: string): Promise<string[]>;
  /** A failure nothing waits for (the client's `error` event). */
  warn?(e: ImgcError): void;
}

/** What a send changes in its group: the devices to add (their packages) and to remove (their leaves). */
interface Plan { state: ClientState | undefined; adds: Claimed[]; removes: Array<{ leaf: number }> }

/** One-time packages to keep on the server; topped up when fewer than half remain. */
const PACKAGES = 16;
/** How long a conversation's devices are taken as unchanged before a send asks again (ms; `devicesTtlMs`). */
const DEVICES_TTL_MS = 60_000;

function pairKey(a: string, b: string): string {
  return a < b ? `p:${a}:${b}` : `p:${b}:${a}`;
}

/** Bytes of a conversation's hash at the start of its group ids. */
const TAG_BYTES = 16;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const unreadable = (why: string): Opened => ({ kind: 'message', msg: null, e2e: { encrypted: true, error: new ImgcError(ClientCode.E2E_UNREADABLE, why) } });

export class E2E {
  private cs!: CiphersuiteImpl;
  private keys!: Keyring;
  private started: Promise<void> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly groups = new Map<string, ClientState>();
  private readonly parts = new Parts();
  private readonly storage: E2EStorage;
  private readonly persist: boolean;
  private readonly config: ClientConfig;
  private readonly texts: Plaintexts;
  /** When each conversation's devices were last asked for. */
  private readonly checked = new Map<string, number>();
  private readonly members = new Map<string, string[]>();
  private dirty = new Set<string>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private topping: Promise<void> | undefined;

  constructor(private readonly host: E2EHost, private readonly opts: E2EOptions) {
    // One check of credentials for every group and package: it remembers each verdict, and a
    // vouch costs a signature verification (some 2 ms for sr25519).
    this.config = clientConfig(authService(opts.verify));
    this.persist = opts.storage !== undefined;
    this.storage = opts.storage ?? new MemoryStorage();
    this.texts = new Plaintexts(this.storage, opts.keptTexts);
  }

  /** This device's id (the hex of its signature key), once started. */
  get device(): string | undefined { return this.keys?.device.id; }

  /** Loads (or makes) the device and its groups; once. */
  start(): Promise<void> {
    this.started ??= this.load();
    return this.started;
  }

  /**
   * Signed in, or a package used: make sure the server holds enough of this device's key packages.
   * One at a time (a second caller shares the one under way): two would both publish, and the
   * private halves of the packages the server then drops would stay here unused.
   */
  topUp(): Promise<void> {
    this.topping ??= this.topUpNow().finally(() => { this.topping = undefined; });
    return this.topping;
  }

  private async topUpNow(): Promise<void> {
    await this.start();
    const mine = (await count(this.host)).find((d) => d.device === this.keys.device.id);
    const have = mine?.count ?? 0;
    const packages = have < PACKAGES / 2 ? await this.keys.generate(PACKAGES - have) : [];
    const lastResort = mine?.lastResort && this.keys.hasLastResort() ? undefined : (await this.keys.generate(1, true))[0];
    if (packages.length > 0 || lastResort !== undefined) await publish(this.host, this.keys.device.id, packages, lastResort);
  }

  /**
   * Removes one of this account's devices from the directory (a lost one; not this one). Senders
   * drop it from their groups at their next look at the directory (`devicesTtlMs`).
   */
  async removeDevice(device: string): Promise<boolean> {
    if (device === this.device) throw new ImgcError(Code.UNEXPECTED_INPUT, 'this is the device in use: remove a lost one from another device');
    await this.start();
    return remove(this.host, device);
  }

  /**
   * A group's membership changed (or may have; every group's when `group` is not given, as after a
   * reconnect, when notices may have been missed): the next send there asks the server again.
   */
  membershipChanged(group?: string): void {
    if (group === undefined) {
      this.members.clear();
      for (const k of this.checked.keys()) if (k.startsWith('g:')) this.checked.delete(k);
      return;
    }
    this.members.delete(group);
    this.checked.delete(`g:${group}`);
  }

  /**
   * The records to post for `msg` in `conv`, in order (the last one is the message), or undefined
   * when the conversation is not encrypted: a member has no device keys (a W3OS client).
   */
  seal(conv: ConvRef, msg: unknown): Promise<Array<Envelope | Part> | undefined> {
    return this.serial(() => this.sealNow(conv, msg));
  }

  /** A post of `conv` failed for good: its group may be ahead of what others saw, so it is begun again. */
  postFailed(conv: ConvRef): void {
    const k = this.outKey(conv);
    const gid = this.storage.get(k);
    this.storage.delete(k);
    if (gid !== undefined) this.forget(gid);
  }

  /** What a received message (live, backlog or history) reads as. */
  open(f: MessageFrame): Promise<Opened> {
    const msg = f.msg;
    if (!isEnvelope(msg) && !isPart(msg)) return Promise.resolve({ kind: 'message', msg, e2e: { encrypted: false } });
    return this.serial(() => this.openNow(f, msg));
  }

  /**
   * Writes what waits to be written (before a close). A storage that refuses (a browser's quota)
   * is reported; the groups stay in memory and are tried again with the next change.
   */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    try {
      for (const gid of this.dirty) {
        const s = this.groups.get(gid);
        if (s) this.storage.set(`gs:${gid}`, saveState(s));
        this.dirty.delete(gid);
      }
    } catch (e) {
      this.host.warn?.(new ImgcError(ClientCode.E2E_UNREADABLE, `the end-to-end state could not be stored: ${(e as Error).message}`));
    }
  }

  // ---- inside ----

  private async load(): Promise<void> {
    this.cs = await suite();
    this.keys = await Keyring.open(this.storage, this.host.account, this.host.sign, this.cs);
    for (const k of this.storage.keys('gs:')) {
      const s = loadState(this.storage.get(k)!, this.config);
      if (s) this.groups.set(k.slice(3), s); else this.storage.delete(k);
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => this.start()).then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private outKey(conv: ConvRef): string {
    return 'group' in conv ? `out:g:${conv.group}` : `out:${pairKey(this.host.account, conv.with)}`;
  }

  private convOf(conv: ConvRef): string {
    return 'group' in conv ? `g:${conv.group}` : pairKey(this.host.account, conv.with);
  }

  private async accountsOf(conv: ConvRef): Promise<string[]> {
    if (!('group' in conv)) return conv.with === this.host.account ? [conv.with] : [this.host.account, conv.with];
    let m = this.members.get(conv.group);
    if (m === undefined) {
      m = await this.host.groupMembers(conv.group);
      this.members.set(conv.group, m);
    }
    return m.includes(this.host.account) ? m : [...m, this.host.account];
  }

  private async sealNow(conv: ConvRef, msg: unknown): Promise<Array<Envelope | Part> | undefined> {
    const ck = this.convOf(conv);
    const plan = await this.plan(conv, ck);
    if (plan === undefined) return undefined;
    const { state, env } = await this.commit(ck, plan);
    const app = await createApplicationMessage(state, utf8(JSON.stringify({ m: msg })), this.cs);
    env.m = encodePrivate(app.privateMessage);
    this.keep(env.g, app.newState);
    this.storage.set(this.outKey(conv), env.g);
    this.storage.set(`enc:${ck}`, '1');
    await this.texts.put(env.m, msg, this.cs);
    return split(env, randomId());
  }

  /**
   * What this device's group in `conv` needs before the message: the devices to add and remove,
   * from the members now and (when due) the directory; undefined when it cannot be encrypted.
   */
  private async plan(conv: ConvRef, ck: string): Promise<Plan | undefined> {
    const accounts = [...new Set(await this.accountsOf(conv))];
    const gid = this.storage.get(this.outKey(conv));
    const state = gid === undefined ? undefined : this.groups.get(gid);
    const inGroup = state === undefined ? [] : this.devicesIn(state);
    const present = new Set([this.host.account, ...inGroup.map((d) => d.account)]);
    // Ask the directory when a member has no device here yet, or now and then for new devices.
    const fresh = state !== undefined && accounts.every((a) => present.has(a)) && Date.now() - (this.checked.get(ck) ?? 0) < (this.opts.devicesTtlMs ?? DEVICES_TTL_MS);
    const claimed: ClaimResult = fresh ? { ok: [], refused: [], devices: new Map() } : await this.claim(accounts, inGroup);
    // Out: the devices of accounts no longer members, and devices their account removed (lost).
    const removes = inGroup.filter((d) => !accounts.includes(d.account) || claimed.devices.get(d.account)?.includes(d.device) === false);
    const staying = inGroup.filter((d) => !removes.includes(d));
    const covered = new Set([this.host.account, ...staying.map((d) => d.account), ...claimed.ok.map((c) => c.account)]);
    const missing = accounts.filter((a) => !covered.has(a));
    if (missing.length > 0) return this.notEncryptable(ck, missing, claimed.refused);
    this.checked.set(ck, Date.now());
    return { state, adds: claimed.ok.filter((c) => c.device !== this.keys.device.id), removes };
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
    const r = await createCommit({ state, cipherSuite: this.cs }, { extraProposals: proposals, ratchetTreeExtension: true });
    env.c = encodeAny(r.commit);
    if (r.welcome) env.w = encodeWelcome(r.welcome);
    return { state: r.newState, env };
  }

  /** The directory's packages; none from a server that has no directory (41400: an older server). */
  private async claim(accounts: string[], have: Array<{ account: string; device: string }>): ReturnType<typeof claim> {
    try {
      return await claim(this.host, accounts, [...have, { account: this.host.account, device: this.keys.device.id }], this.config.authService);
    } catch (e) {
      if (e instanceof ImgcError && e.code === Code.INVALID_REQUEST) return { ok: [], refused: [], devices: new Map() };
      throw e;
    }
  }

  /** No device keys for `missing`: plaintext, unless the conversation was encrypted or keys were refused. */
  private notEncryptable(ck: string, missing: string[], refused: Array<{ account: string; why: string }>): undefined {
    const bad = refused.find((r) => missing.includes(r.account));
    if (bad) throw new ImgcError(ClientCode.E2E_BAD_VOUCH, `the device keys of ${bad.account} are refused: ${bad.why}; nothing was sent`);
    if (this.storage.get(`enc:${ck}`) !== undefined) {
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
    id.set(await this.convTag(ck));
    id.set(this.cs.rng.randomBytes(TAG_BYTES), TAG_BYTES);
    const own = await this.keys.unpublished();
    return createGroup(id, own.kp, own.priv, [], this.cs, this.config);
  }

  /** The other devices in a group, with their accounts and leaves. */
  private devicesIn(s: ClientState): Array<{ account: string; device: string; leaf: number }> {
    const out: Array<{ account: string; device: string; leaf: number }> = [];
    for (const { index, leaf } of leaves(s)) {
      const device = hex(leaf.signaturePublicKey);
      const who = readCredential(leaf.credential);
      if (who && device !== this.keys.device.id) out.push({ account: who.account, device, leaf: index });
    }
    return out;
  }

  private async openNow(f: MessageFrame, msg: Envelope | Part): Promise<Opened> {
    const group = (f as { group?: string }).group;
    const ck = group !== undefined ? `g:${group}` : pairKey(f.from, f.to);
    const env = isPart(msg) ? this.parts.add(f.from, ck, msg) : msg;
    if (env === undefined) return { kind: 'hidden' };
    const known = env.m === undefined ? undefined : await this.texts.get(env.m, this.cs);
    if (known !== undefined) return { kind: 'message', msg: known.msg, e2e: { encrypted: true } };
    const gid = unb64(env.g);
    if (gid === undefined || !sameBytes(gid.subarray(0, TAG_BYTES), await this.convTag(ck))) return unreadable('a record of another conversation, or not a group of ours');
    let state = this.groups.get(env.g);
    try {
      state = await this.handshake(env, state);
    } catch (e) {
      return unreadable(`its group change could not be applied: ${(e as Error).message}`);
    }
    if (env.m === undefined) return { kind: 'hidden' };
    if (state === undefined) return unreadable('not readable on this device: it was not in the group when this was sent');
    return this.readApp(f, env.g, env.m, state);
  }

  /** The first bytes of every group id of a conversation: its key's hash. */
  private async convTag(ck: string): Promise<Uint8Array> {
    return (await this.cs.hash.digest(utf8(ck))).subarray(0, TAG_BYTES);
  }

  /** Joins by the Welcome if it is this device's, or applies the commit; the group state after. */
  private async handshake(env: Envelope, state: ClientState | undefined): Promise<ClientState | undefined> {
    if (env.w !== undefined && state === undefined) {
      const w = decodeWelcome(env.w);
      const own = w === undefined ? undefined : this.keys.find(w.secrets.map((s) => s.newMember));
      if (w !== undefined && own !== undefined) {
        const joined = await joinGroup(w, own.kp, own.priv, emptyPskIndex, this.cs, undefined, undefined, this.config);
        this.keys.used(own.ref);
        this.keep(env.g, joined);
        void this.topUp().catch(() => undefined);
        return joined;
      }
    }
    if (env.c === undefined || state === undefined) return state;
    const pm = decodePrivate(env.c);
    if (pm === undefined) throw new Error('not an MLS commit');
    if (pm.epoch < epochOf(state)) return state; // applied before (history read again)
    const r = await processPrivateMessage(state, pm, emptyPskIndex, this.cs);
    if (r.newState.groupActiveState.kind === 'removedFromGroup') {
      this.forget(env.g);
      return undefined;
    }
    this.keep(env.g, r.newState);
    return r.newState;
  }

  private async readApp(f: MessageFrame, gid: string, m: string, state: ClientState): Promise<Opened> {
    const pm = decodePrivate(m);
    if (pm === undefined) return unreadable('not an MLS message');
    let r: Awaited<ReturnType<typeof openApplication>>;
    try {
      r = await openApplication(state, pm, this.cs);
    } catch (e) {
      return unreadable(`it does not decrypt: ${(e as Error).message}`);
    }
    const sender = leaves(r.state).find((l) => l.index === r.leaf);
    const who = sender === undefined ? undefined : readCredential(sender.leaf.credential);
    if (who?.account !== f.from) return unreadable(`its MLS sender is ${who?.account ?? 'unknown'}, not ${f.from}`);
    let body: { m?: unknown };
    try { body = JSON.parse(fromUtf8(r.data)) as { m?: unknown }; } catch { return unreadable('its text is not ours'); }
    this.keep(gid, r.state);
    await this.texts.put(m, body.m, this.cs);
    return { kind: 'message', msg: body.m ?? null, e2e: { encrypted: true } };
  }

  private keep(gid: string, s: ClientState): void {
    this.groups.set(gid, s);
    if (!this.persist) return;
    this.dirty.add(gid);
    this.flushTimer ??= setTimeout(() => this.flush(), 100);
  }

  private forget(gid: string): void {
    this.groups.delete(gid);
    this.dirty.delete(gid);
    this.storage.delete(`gs:${gid}`);
  }
}
