/**
 * Key packages, on the thread that holds the sockets: the server side of end-to-end encryption, a
 * directory of one-time MLS (RFC 9420) key packages per account and device (`cat: "keys"`:
 * `publish`, `claim`, `count`, `remove`).
 *
 * Each device of an account publishes one-time key packages; a sender claims one per device of each
 * recipient account to add those devices to its MLS group. The server keeps them opaque and never
 * parses MLS: a package is signed by its device's key and carries the account's signature vouching
 * for that device, which the SDK checks, so the server cannot hand out packages of its own. An
 * account with no devices gives nothing to a claim, which the SDK reads as "no end-to-end
 * encryption" (a plain W3OS client).
 *
 * The directory of one account is its actor state `keys:<account>` (a JSON array of devices, in the
 * order they first published), written beside the shards through the carrier like any state: stored,
 * in backups, replicated in a cluster, kept across restarts; only the account itself changes it or
 * reads its counts. Bounds per account: KEYS_DEVICES_MAX (8) devices × (KEYS_PER_DEVICE (16)
 * one-time packages + 1 last-resort) × KeyWire.packageChars (2048) base64 characters, about 280 KB
 * of state, under a cluster ledger entry (768 KiB). Parsed directories are kept in an LRU bounded
 * by count and by characters (most accounts have none: a claim of them must stay cheap), dropped
 * when their state is applied again.
 *
 * A claim removes each device's oldest one-time package; with none left it hands out the device's
 * last-resort package, flagged and not removed (MLS allows its reuse until the device replaces it).
 * Consumed once on one node: claims are decided one after the other on this thread, each reading
 * the directory the one before wrote (the carrier's `stateOf` includes states handed on and not yet
 * applied). Not across nodes: a claim is decided on the node holding the claimer's socket and its
 * state is applied on every node, so two claims of the same account at the same instant on two
 * nodes can hand out the same package, and a publish racing a claim elsewhere can lose either's
 * change (the state applied last wins). Nothing is built against that: the SDK keeps a package's
 * private key until the package is replaced, so a package used twice still opens both Welcomes,
 * and `count` shows it what to top up.
 *
 * Package contents are never logged, nor put in an error text.
 */
import { LRUCache } from 'lru-cache';
import { Code } from '../protocol/codes';
import { errorFrame, noticeFrame, type Request } from '../protocol/frames';
import { KeyWire } from '../protocol/key-wire';
import type { StateOut } from './envelopes';
import type { Peer } from './peer';

export const KEYS_PREFIX = 'keys:';
/** One-time packages kept per device; a publish past it drops the oldest. */
export const KEYS_PER_DEVICE = KeyWire.perDevice;
/** Devices with key packages per account; a publish from one more is refused (44744). */
export const KEYS_DEVICES_MAX = KeyWire.devicesMax;
/** Directories kept parsed in memory, and the characters of their packages together. */
const CACHE_MAX = 50_000;
const CACHE_CHARS = 32 * 1024 * 1024;

const DEVICE = /^[0-9a-f]{64}$/;

export const keysAddress = (account: string): string => KEYS_PREFIX + account;

/** One device's packages: one-time ones oldest first, and the last-resort one if published. */
export interface DeviceKeys {
  readonly device: string;
  readonly packages: readonly string[];
  readonly lastResort?: string;
}

/** An account's devices, in the order they first published. */
export type Directory = readonly DeviceKeys[];

/** A package handed out by a claim, as the answer lists it. */
export interface Claimed { account: string; device: string; kp: string; lastResort?: true }

/** A decision's answer, with the account's new directory when it changes. */
export type KeysDecision<M> = { dir?: Directory; msg: M } | { code: typeof Code.UNEXPECTED_INPUT; error: string };

export interface PublishMsg { device: string; count: number; lastResort: boolean }
export interface CountMsg { devices: PublishMsg[] }
export interface RemoveMsg { device: string; removed: boolean }

/** One stored device, or undefined when malformed. */
function deviceOf(e: unknown): DeviceKeys | undefined {
  if (e === null || typeof e !== 'object') return undefined;
  const { device, packages, lastResort } = e as Record<string, unknown>;
  if (typeof device !== 'string' || !DEVICE.test(device) || !Array.isArray(packages)) return undefined;
  const kept = packages.filter((p): p is string => typeof p === 'string').slice(-KEYS_PER_DEVICE);
  return withLastResort({ device, packages: kept }, typeof lastResort === 'string' ? lastResort : undefined);
}

/**
 * The directory of a stored state. Anything malformed reads as empty (a device entry that is not
 * one is skipped), and the bounds hold whatever was stored: the state passed no schema.
 */
export function directoryOf(state: unknown): Directory {
  if (!Array.isArray(state)) return [];
  const out: DeviceKeys[] = [];
  for (const e of state) {
    const d = deviceOf(e);
    if (d !== undefined && !out.some((x) => x.device === d.device)) out.push(d);
  }
  return out.slice(0, KEYS_DEVICES_MAX);
}

/** The state a directory is stored as: none once no device is left. */
export const stateOfDirectory = (dir: Directory): Directory | undefined => (dir.length > 0 ? dir : undefined);

function withLastResort(d: { device: string; packages: readonly string[] }, lastResort: string | undefined): DeviceKeys {
  return lastResort === undefined ? d : { ...d, lastResort };
}

const summary = (d: DeviceKeys): PublishMsg => ({ device: d.device, count: d.packages.length, lastResort: d.lastResort !== undefined });

/**
 * `publish`: the packages appended to the device's (the entry made on its first publish), the
 * oldest dropped past KEYS_PER_DEVICE; a package the device still holds is not added again, so a
 * publish retried after a lost answer adds nothing twice. `lastResort` replaces the device's. A
 * device past KEYS_DEVICES_MAX is refused.
 */
export function decidePublish(dir: Directory, device: string, packages: readonly string[], lastResort?: string): KeysDecision<PublishMsg> {
  const i = dir.findIndex((d) => d.device === device);
  if (i < 0 && dir.length >= KEYS_DEVICES_MAX) {
    return { code: Code.UNEXPECTED_INPUT, error: `an account has at most ${KEYS_DEVICES_MAX} devices with key packages: remove one with keys/remove first` };
  }
  const old: DeviceKeys = dir[i] ?? { device, packages: [] };
  const held = new Set(old.packages);
  const added: string[] = [];
  for (const p of packages) {
    if (held.has(p)) continue;
    held.add(p);
    added.push(p);
  }
  const entry = withLastResort({ device, packages: [...old.packages, ...added].slice(-KEYS_PER_DEVICE) }, lastResort ?? old.lastResort);
  const msg = summary(entry);
  if (i >= 0 && added.length === 0 && entry.lastResort === old.lastResort) return { msg };
  return { dir: i < 0 ? [...dir, entry] : dir.map((d, j) => (j === i ? entry : d)), msg };
}

/**
 * `claim` of one account: for each device not in `except`, its oldest one-time package (removed),
 * or its last-resort one (kept, flagged) when none is left; a device with neither gives nothing.
 * `dir` is undefined when nothing was removed.
 */
export function claimFrom(account: string, dir: Directory, except: ReadonlySet<string>): { dir?: Directory; claimed: Claimed[] } {
  const claimed: Claimed[] = [];
  let removed = false;
  const next = dir.map((d): DeviceKeys => {
    if (except.has(d.device)) return d;
    const [kp, ...rest] = d.packages;
    if (kp !== undefined) {
      removed = true;
      claimed.push({ account, device: d.device, kp });
      return withLastResort({ device: d.device, packages: rest }, d.lastResort);
    }
    if (d.lastResort !== undefined) claimed.push({ account, device: d.device, kp: d.lastResort, lastResort: true });
    return d;
  });
  return removed ? { dir: next, claimed } : { claimed };
}

/** `count`: each device's one-time packages and whether it has a last-resort one. */
export const decideCount = (dir: Directory): CountMsg => ({ devices: dir.map(summary) });

/** `remove`: the device and its packages gone (a device not there changes nothing). */
export function decideRemove(dir: Directory, device: string): KeysDecision<RemoveMsg> {
  const next = dir.filter((d) => d.device !== device);
  return next.length === dir.length ? { msg: { device, removed: false } } : { dir: next, msg: { device, removed: true } };
}

/** The characters a directory holds, for the cache's bound (at least 1: an empty one costs a slot). */
function charsOf(dir: Directory): number {
  let n = 1;
  for (const d of dir) n += 64 + (d.lastResort?.length ?? 0) + d.packages.reduce((s, p) => s + p.length, 0);
  return n;
}

/** The parameters of the requests, as the schema (protocol/schema.ts `keys`) let them through. */
interface PublishParams { device: string; packages: string[]; lastResort?: string }
interface ClaimParams { accounts: string[]; except: ReadonlySet<string> }

const publishParams = (r: Request): PublishParams => ({ device: r.device as string, packages: r.packages as string[], ...(typeof r.lastResort === 'string' && { lastResort: r.lastResort }) });
const claimParams = (r: Request): ClaimParams => ({ accounts: r.accounts as string[], except: new Set((r.except as string[] | undefined) ?? []) });

export interface KeyPackagesDeps {
  /** An actor's newest state (including one handed on and not applied yet). */
  stateOf(address: string): unknown;
  /** Hands on new states (written beside the shards). */
  submit(states: StateOut[]): void;
  afterDurable(fn: () => void, lost?: () => void): void;
}

export class KeyPackages {
  private readonly cache = new LRUCache<string, Directory>({ max: CACHE_MAX, maxSize: CACHE_CHARS, sizeCalculation: charsOf });
  readonly counters = { publishes: 0, claimed: 0, lastResortClaimed: 0, removes: 0 };

  constructor(private readonly deps: KeyPackagesDeps) {}

  /** The account's directory as it stands (states handed on included). */
  directory(account: string): Directory {
    let dir = this.cache.get(account);
    if (dir === undefined) {
      dir = directoryOf(this.deps.stateOf(keysAddress(account)));
      this.cache.set(account, dir);
    }
    return dir;
  }

  /** A state was applied: a directory read before is stale. */
  changed(address: string): void {
    if (address.startsWith(KEYS_PREFIX)) this.cache.delete(address.slice(KEYS_PREFIX.length));
  }

  /** `publish`, `claim`, `count`, `remove` of a signed-in connection; a change is answered once it is durable. */
  request(peer: Peer, r: Request): void {
    const me = peer.account!;
    switch (r.act) {
      case 'publish': return this.publish(peer, me, r);
      case 'claim': return this.claim(peer, r);
      case 'count': return void peer.send(noticeFrame('keys', r.act, decideCount(this.directory(me)), r.callback));
      case 'remove': return this.decided(peer, me, r, decideRemove(this.directory(me), r.device as string));
    }
  }

  private publish(peer: Peer, me: string, r: Request): void {
    const p = publishParams(r);
    this.decided(peer, me, r, decidePublish(this.directory(me), p.device, p.packages, p.lastResort));
  }

  /** A decision about the requester's own directory: refused, answered, or written then answered. */
  private decided<M>(peer: Peer, me: string, r: Request, d: KeysDecision<M>): void {
    if ('code' in d) return void peer.send(errorFrame(d.code, d.error, r));
    if (d.dir !== undefined) this.counters[r.act === 'remove' ? 'removes' : 'publishes']++;
    this.write(peer, r, d.dir === undefined ? new Map() : new Map([[me, d.dir]]), d.msg);
  }

  private claim(peer: Peer, r: Request): void {
    const { accounts, except } = claimParams(r);
    const changes = new Map<string, Directory>();
    const packages: Claimed[] = [];
    // Every device each account has now, so a sender drops from its groups the ones removed (lost).
    const devices: Record<string, string[]> = {};
    for (const account of accounts) {
      const dir = this.directory(account);
      devices[account] = dir.map((d) => d.device);
      const c = claimFrom(account, dir, except);
      packages.push(...c.claimed);
      if (c.dir !== undefined) changes.set(account, c.dir);
    }
    for (const p of packages) if (p.lastResort) this.counters.lastResortClaimed++; else this.counters.claimed++;
    this.write(peer, r, changes, { packages, devices });
  }

  /**
   * Hands on the changed directories and answers once they are durable (at once when nothing
   * changed). They stay cached as written (what `stateOf` answers from now on: the next claim
   * must not parse a whole directory again). If they are lost (a full disk), nothing was consumed:
   * the requester is told to retry, and the directories are read again from what the store kept.
   */
  private write(peer: Peer, r: Request, changes: ReadonlyMap<string, Directory>, msg: unknown): void {
    const answer = noticeFrame('keys', r.act, msg, r.callback);
    if (changes.size === 0) return void peer.send(answer);
    this.deps.submit([...changes].map(([account, dir]): StateOut => ({ t: 'state', address: keysAddress(account), state: stateOfDirectory(dir) })));
    for (const [account, dir] of changes) this.cache.set(account, dir);
    this.deps.afterDurable(() => peer.send(answer), () => {
      for (const account of changes.keys()) this.cache.delete(account);
      peer.send(errorFrame(Code.STORAGE_FULL, 'the key packages could not be stored (the disk is full); retry later', r));
    });
  }

  stats(): Record<string, number> { return { ...this.counters, directoriesCached: this.cache.size }; }
}
