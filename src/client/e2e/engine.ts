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
 * This file is the front the client holds: it starts the device (`context.ts`), keeps its key
 * packages on the server, and runs every change of group state one at a time (`serial`), in the
 * order records arrive and sends are asked for: `sender.ts` the sending side, `reader.ts` the
 * reading side.
 */
import { KeyWire } from '../../protocol/key-wire.js';
import { Code, ImgcError } from '../errors.js';
import type { MessageFrame } from '../types.js';
import type { DeviceContext, E2EHost, E2EOptions } from './context.js';
import type { ConvRef } from './conversation.js';
import { authService } from './device.js';
import { count, publish, remove } from './directory.js';
import { isEnvelope, isPart, type Envelope, type Part } from './envelope.js';
import { GroupStates } from './group-states.js';
import { Keyring } from './keyring.js';
import { clientConfig, suite } from './mls.js';
import { Plaintexts } from './plaintexts.js';
import { Reader, type Opened } from './reader.js';
import { Sender } from './sender.js';
import { MemoryStorage } from './storage.js';

export type { DeviceContext, E2EHost, E2EOptions } from './context.js';
export type { ConvRef } from './conversation.js';
export type { Opened } from './reader.js';

/** One-time packages to keep on the server (all a device holds there); topped up when fewer than half remain. */
const PACKAGES = KeyWire.perDevice;

interface Started { d: DeviceContext; sender: Sender; reader: Reader }

export class E2E {
  private started: Promise<Started> | undefined;
  private device_: string | undefined;
  private groups: GroupStates | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private topping: Promise<void> | undefined;
  /** The sending side, once started (memberships are forgotten at once, not in turn). */
  private sender: Sender | undefined;

  constructor(private readonly host: E2EHost, private readonly opts: E2EOptions) {}

  /** This device's id (the hex of its signature key), once started. */
  get device(): string | undefined { return this.device_; }

  /** Loads (or makes) the device and its groups; once. */
  start(): Promise<Started> {
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

  /**
   * Removes one of this account's devices from the directory (a lost one; not this one). Senders
   * drop it from their groups at their next look at the directory (`devicesTtlMs`).
   */
  async removeDevice(device: string): Promise<boolean> {
    await this.start();
    if (device === this.device) throw new ImgcError(Code.UNEXPECTED_INPUT, 'this is the device in use: remove a lost one from another device');
    return remove(this.host, device);
  }

  /**
   * A group's membership changed (or may have; every group's when `group` is not given, as after a
   * reconnect, when notices may have been missed): the next send there asks the server again.
   */
  membershipChanged(group?: string): void {
    this.sender?.membershipChanged(group);
  }

  /**
   * The records to post for `msg` in `conv`, in order (the last one is the message), or undefined
   * when the conversation is not encrypted: a member has no device keys (a W3OS client).
   */
  seal(conv: ConvRef, msg: unknown): Promise<Array<Envelope | Part> | undefined> {
    return this.serial((s) => s.sender.seal(conv, msg));
  }

  /** A post of `conv` failed for good: its group may be ahead of what others saw, so it is begun again. */
  postFailed(conv: ConvRef): void {
    void this.serial(async (s) => s.sender.postFailed(conv));
  }

  /** What a received message (live, backlog or history) reads as. */
  open(f: MessageFrame): Promise<Opened> {
    const msg = f.msg;
    if (!isEnvelope(msg) && !isPart(msg)) return Promise.resolve({ kind: 'message', msg, e2e: { encrypted: false } });
    return this.serial((s) => s.reader.open(f, msg));
  }

  /** Writes what waits to be written (before a close). */
  flush(): void {
    this.groups?.flush();
  }

  private async load(): Promise<Started> {
    const cs = await suite();
    const storage = this.opts.storage ?? new MemoryStorage();
    const keys = await Keyring.open(storage, this.host.account, this.host.sign, cs);
    // One check of credentials for every group and package: it remembers each verdict, and a
    // vouch costs a signature verification (some 2 ms for sr25519).
    const config = clientConfig(authService(this.opts.verify));
    const groups = new GroupStates(storage, this.opts.storage !== undefined, (e) => this.host.warn?.(e));
    groups.load(config);
    this.groups = groups;
    this.device_ = keys.device.id;
    const d: DeviceContext = { host: this.host, opts: this.opts, cs, keys, config, storage, groups, texts: new Plaintexts(storage, this.opts.keptTexts) };
    const sender = new Sender(d);
    this.sender = sender;
    return { d, sender, reader: new Reader(d, () => void this.topUp().catch(() => undefined)) };
  }

  private serial<T>(fn: (s: Started) => Promise<T>): Promise<T> {
    const run = this.queue.then(() => this.start()).then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async topUpNow(): Promise<void> {
    const { d } = await this.start();
    const id = d.keys.device.id;
    const mine = (await count(this.host)).find((x) => x.device === id);
    const have = mine?.count ?? 0;
    const packages = have < PACKAGES / 2 ? await d.keys.generate(PACKAGES - have) : [];
    const lastResort = mine?.lastResort && d.keys.hasLastResort() ? undefined : (await d.keys.generate(1, true))[0];
    if (packages.length > 0 || lastResort !== undefined) await publish(this.host, id, packages, lastResort);
  }
}
