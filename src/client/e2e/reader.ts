/**
 * The reading side: what a received record (live, backlog or history) reads as. A record names
 * the sender's group; the reader checks that the group is this conversation's, joins it by its
 * Welcome when the record adds this device, applies its commit, and decrypts the message, checking
 * that its MLS sender is the account the server says sent it. A text read once is kept
 * (`Plaintexts`): MLS deletes each message key once used.
 */
import { ClientCode, ImgcError } from '../errors.js';
import type { E2EInfo, MessageFrame } from '../types.js';
import type { DeviceContext } from './context.js';
import { frameKey, ofConversation } from './conversation.js';
import { readCredential } from './device.js';
import { isPart, Parts, type Envelope, type Part } from './envelope.js';
import {
  decodePrivate, decodeWelcome, emptyPskIndex, epochOf, fromUtf8, joinGroup, leaves, openApplication, processPrivateMessage, unb64,
  type ClientState,
} from './mls.js';

/** What a received record is: a message to show, or part of the machinery (a commit, a part). */
export type Opened = { kind: 'message'; msg: unknown; e2e: E2EInfo } | { kind: 'hidden' };

const unreadable = (why: string): Opened => ({ kind: 'message', msg: null, e2e: { encrypted: true, error: new ImgcError(ClientCode.E2E_UNREADABLE, why) } });

export class Reader {
  private readonly parts = new Parts();

  /** `packageUsed`: this device joined a group with one of its key packages (time to top up). */
  constructor(private readonly d: DeviceContext, private readonly packageUsed: () => void) {}

  async open(f: MessageFrame, msg: Envelope | Part): Promise<Opened> {
    const ck = frameKey(f as MessageFrame & { group?: string });
    const env = isPart(msg) ? this.parts.add(f.from, ck, msg) : msg;
    if (env === undefined) return { kind: 'hidden' };
    const known = env.m === undefined ? undefined : await this.d.texts.get(env.m, this.d.cs);
    if (known !== undefined) return { kind: 'message', msg: known.msg, e2e: { encrypted: true } };
    const gid = unb64(env.g);
    if (gid === undefined || !await ofConversation(gid, ck, this.d.cs)) return unreadable('a record of another conversation, or not a group of ours');
    let state: ClientState | undefined;
    try {
      state = await this.handshake(env, this.d.groups.get(env.g));
    } catch (e) {
      return unreadable(`its group change could not be applied: ${(e as Error).message}`);
    }
    if (env.m === undefined) return { kind: 'hidden' };
    if (state === undefined) return unreadable('not readable on this device: it was not in the group when this was sent');
    return this.read(f, env.g, env.m, state);
  }

  /** Joins by the Welcome if it is this device's, or applies the commit; the group state after. */
  private async handshake(env: Envelope, state: ClientState | undefined): Promise<ClientState | undefined> {
    if (env.w !== undefined && state === undefined) {
      const joined = await this.join(env.g, env.w);
      if (joined !== undefined) return joined;
    }
    if (env.c === undefined || state === undefined) return state;
    const pm = decodePrivate(env.c);
    if (pm === undefined) throw new Error('not an MLS commit');
    if (pm.epoch < epochOf(state)) return state; // applied before (history read again)
    const r = await processPrivateMessage(state, pm, emptyPskIndex, this.d.cs);
    if (r.newState.groupActiveState.kind === 'removedFromGroup') {
      this.d.groups.forget(env.g);
      return undefined;
    }
    this.d.groups.keep(env.g, r.newState);
    return r.newState;
  }

  /** The group a Welcome makes, when one of this device's packages is among its new members. */
  private async join(gid: string, welcome: string): Promise<ClientState | undefined> {
    const w = decodeWelcome(welcome);
    const own = w === undefined ? undefined : this.d.keys.find(w.secrets.map((s) => s.newMember));
    if (w === undefined || own === undefined) return undefined;
    const joined = await joinGroup(w, own.kp, own.priv, emptyPskIndex, this.d.cs, undefined, undefined, this.d.config);
    this.d.keys.used(own.ref);
    this.d.groups.keep(gid, joined);
    this.packageUsed();
    return joined;
  }

  private async read(f: MessageFrame, gid: string, m: string, state: ClientState): Promise<Opened> {
    const pm = decodePrivate(m);
    if (pm === undefined) return unreadable('not an MLS message');
    let r: Awaited<ReturnType<typeof openApplication>>;
    try {
      r = await openApplication(state, pm, this.d.cs);
    } catch (e) {
      return unreadable(`it does not decrypt: ${(e as Error).message}`);
    }
    const sender = leaves(r.state).find((l) => l.index === r.leaf);
    const who = sender === undefined ? undefined : readCredential(sender.leaf.credential);
    if (who?.account !== f.from) return unreadable(`its MLS sender is ${who?.account ?? 'unknown'}, not ${f.from}`);
    let body: { m?: unknown };
    try { body = JSON.parse(fromUtf8(r.data)) as { m?: unknown }; } catch { return unreadable('its text is not ours'); }
    this.d.groups.keep(gid, r.state);
    await this.d.texts.put(m, body.m, this.d.cs);
    return { kind: 'message', msg: body.m ?? null, e2e: { encrypted: true } };
  }
}
