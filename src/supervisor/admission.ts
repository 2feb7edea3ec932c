/**
 * Admission: the one gate a request passes before it may write. Refused while this node cannot
 * store (cut off from the cluster's store: 45003; the store full: 45007, with a probe for space
 * every STORE_PROBE_MS until writes succeed again); something new (a group, a first direct message
 * between two accounts) while free disk space is under the watermark (45007, disk-watch.ts); and a
 * group `create` past the server's group count or the hourly quota of the account or of its remote
 * address (44029). Each refusal is answered here, counted and logged.
 */
import type { Logger } from '../log';
import { Code } from '../protocol/codes';
import { errorFrame, STORAGE_FULL_TEXT, type Request } from '../protocol/frames';
import { directConv, type Store, type StoreHealth } from '../store/ports';
import { errorsTotal } from '../status/instruments';
import type { DiskWatch } from './disk-watch';
import type { Limits } from './limits';

/** While the store is full: how often it is probed for space (a small write). */
export const STORE_PROBE_MS = 2000;

/** What a refusal answers under the free-disk watermark. */
export const LOW_DISK_TEXT = 'the server is low on disk space: new groups and new conversations are refused for now (messages in existing conversations go on)';

/** Where a refusal goes: the requesting socket (its remote address counts toward the per-address quota). */
export interface Requester { send(frame: string): unknown; readonly account: string | undefined; readonly remoteAddress?: string | undefined }

export interface AdmissionDeps {
  /** Why this node cannot take writes now (cut off from a cluster's store), or undefined. */
  cutOff(): string | undefined;
  readonly limits: Limits;
  readonly disk: DiskWatch;
  readonly counters: { storeRefused: number };
  readonly log: Logger;
}

export class Admission {
  private store: Store | undefined;
  private probe: NodeJS.Timeout | undefined;

  constructor(private readonly deps: AdmissionDeps) {}

  /** Watches the store's health from now on. */
  watch(store: Store): void {
    this.store = store;
    store.onHealth((h) => this.healthChanged(h));
  }

  /** True when a request that would write may go on; otherwise it was answered (45003 or 45007). */
  writes(peer: Requester, r: Request): boolean {
    const cutOff = this.deps.cutOff();
    // Cut off from the cluster's engine: nothing can be stored, so nothing is taken (the client retries, maybe elsewhere).
    if (cutOff !== undefined) return this.refuse(peer, r, Code.UNAVAILABLE, cutOff);
    if (this.store === undefined || this.store.health().writable) return true;
    return this.refuse(peer, r, Code.STORAGE_FULL, STORAGE_FULL_TEXT);
  }

  /** The watermark, the server's group count and the hourly quotas; a refusal is answered here (45007, 44029). */
  create(peer: Requester, r: Request): boolean {
    if (!this.roomForNew(peer, r)) return false;
    const limits = this.deps.limits;
    if (limits.groups >= limits.values.maxGroups) {
      limits.hit('maxGroups', 'group create refused: max-groups reached', { max: limits.values.maxGroups });
      peer.send(errorFrame(Code.RATE_LIMITED, `the server holds its most groups (${limits.values.maxGroups})`, r));
      return false;
    }
    const refused = limits.takeGroupQuota(peer.account!, peer.remoteAddress);
    if (refused === undefined) return true;
    const { limit, retryAfterMs } = refused;
    const max = limits.values[limit];
    const perAddress = limit === 'groupsPerHourPerAddress';
    limits.hit(limit, `group create refused: ${perAddress ? 'groups-per-hour-per-address' : 'groups-per-hour'} reached`, { account: peer.account, address: peer.remoteAddress, max });
    peer.send(quotaFrame(`at most ${max} groups per hour${perAddress ? ' from one address' : ''}; retry in ${retryAfterMs} ms`, r, retryAfterMs));
    return false;
  }

  /** A direct message: one that would start a conversation is refused under the watermark (45007). */
  direct(peer: Requester, r: Request): boolean {
    if (!this.deps.disk.low) return true;
    const from = peer.account!;
    if (this.store?.positions.membership(from, directConv(from, r.to as string)) !== undefined) return true;
    return this.roomForNew(peer, r);
  }

  /** False (answered 45007, counted) while free disk space is under the watermark. */
  private roomForNew(peer: Requester, r: Request): boolean {
    if (!this.deps.disk.low) return true;
    this.deps.limits.hit('minFreeMb', 'refused: free disk space under --min-free-mb', { account: peer.account, act: r.act });
    errorsTotal.inc({ code: Code.STORAGE_FULL });
    peer.send(errorFrame(Code.STORAGE_FULL, LOW_DISK_TEXT, r));
    return false;
  }

  stop(): void {
    clearInterval(this.probe);
    this.probe = undefined;
  }

  private refuse(peer: Requester, r: Request, code: typeof Code.UNAVAILABLE | typeof Code.STORAGE_FULL, text: string): false {
    this.deps.counters.storeRefused++;
    errorsTotal.inc({ code });
    peer.send(errorFrame(code, text, r));
    return false;
  }

  /**
   * The store went full (one warning; requests that would write are refused and counted) or took
   * writes again (one info line). While full it is probed every STORE_PROBE_MS.
   */
  private healthChanged(h: StoreHealth): void {
    const log = this.deps.log;
    if (!h.writable) {
      log.warn({ reason: h.reason, failedCommits: h.failedCommits }, 'store full: refusing writes (error 45007) until space returns');
      this.probe ??= setInterval(() => {
        try {
          this.store?.probe();
        } catch (err) {
          log.debug({ err }, 'store probe failed');
        }
      }, STORE_PROBE_MS);
      this.probe.unref();
    } else {
      this.stop();
      log.info({ refused: this.deps.counters.storeRefused, failedCommits: h.failedCommits }, 'store writable again');
    }
  }
}

/** 44029 with a `retryAfterMs` key beside the error text (clients that do not know it see an ordinary error). */
function quotaFrame(text: string, request: Request, retryAfterMs: number): string {
  const f = JSON.parse(errorFrame(Code.RATE_LIMITED, text, request)) as Record<string, unknown>;
  return JSON.stringify({ ...f, retryAfterMs });
}
