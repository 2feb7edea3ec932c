/**
 * The delivery actor, on the thread that holds the sockets: it stores what the deciding actors
 * (group, direct, verifier) post, once, in its conversation's log, and writes it to the sockets of
 * the recipients that are online; it reads back what an account missed when it signs in, answers
 * `history`, and keeps each account's delivered and acknowledged offsets.
 *
 * The `seq` of a frame is the offset of its record: one sequence for the whole store, so it
 * increases for every account, and `ack N` acknowledges every conversation through N at once.
 * Frames reach an account in offset order because this thread alone appends, and a connection
 * that is still reading its backlog holds live frames until the backlog has caught up.
 *
 * When output may leave:
 * - a live frame to an account that does not acknowledge: at once (it changes nothing anyone
 *   relies on; its record is written at the end of the turn);
 * - a sender's acknowledgement, a frame for an acknowledging account, a group actor's answer to a
 *   change: once the store says the records behind them are durable.
 */
import { LRUCache } from 'lru-cache';
import { logger } from '../log';
import { Code } from '../protocol/codes';
import { errorFrame, refusedAnswer, renderFrame, STORAGE_FULL_TEXT, type Request, type Template } from '../protocol/frames';
import { accountConv, type AccountPositions, type ConvId, type NewEntry, type Store } from '../store/ports';
import { deliveryLatencySeconds, now as clock, secondsSince } from '../status/instruments';
import { PositionBook } from './account-positions';
import { Backlog } from './backlog';
import { DurableGate } from './durable-gate';
import type { Post, StateOut } from './envelopes';
import { applyChange, changeAnswer, decideChange, type ChangeDecision } from './edits';
import { readHistory, type HistoryAnnotate } from './history';
import { ownRecipient, renderOwnFrame } from './own';
import type { Peer, Peers } from './peer';
import { Retention, type RetentionPolicy } from './retention';

type ChangeOk = Extract<ChangeDecision, { ok: true }>;

export interface DeliveryLimits extends RetentionPolicy {
  /** Newest records of a group delivered at sign-in. */
  groupBacklog: number;
  /** Bytes a socket may have waiting before it is dropped (see Connection.send); a backlog stays well under. */
  maxBuffered: number;
}

/** Backlog frames written per turn to one connection. */
const SYNC_TURN = 256;
/** Live frames a connection still reading its backlog may hold; past this it reads them from the log. */
const HELD_MAX = 5000;
const HELD_BYTES = 4 * 1024 * 1024;

interface Sync {
  peer: Peer;
  backlog: Backlog;
  /** The backlog covers offsets up to here; anything later arrives live (held meanwhile). */
  upTo: number;
  held: string[];
  heldBytes: number;
  /** Offset of the newest frame held. */
  heldLast: number;
  /** Held frames overflowed and were dropped: read them from the log after this pass. */
  overflow: boolean;
}

export class Delivery {
  private readonly positions: PositionBook;
  private readonly retention: Retention;
  private readonly syncs = new Map<number, Sync>();
  /** Direct conversations known to be in both accounts' membership lists. */
  private readonly knownConvs = new LRUCache<string, true>({ max: 100_000 });
  private lastOffset: number;
  private readonly gate: DurableGate;
  private readonly log = logger({ part: 'delivery' });
  readonly counters = { appended: 0, duplicates: 0, pushed: 0, backlogFrames: 0, lostFull: 0 };
  /**
   * A store write failed for good (see durable-gate.ts): the output waiting on it never leaves. The owner sets this and
   * decides what stops; an actor never ends the process.
   */
  onFatal: (err: unknown) => void = (err) => this.log.error({ err }, 'fatal store error, and no owner was told (onFatal not set)');
  /**
   * The store is a replica of a ledger (cluster mode): a lost write would make it differ from the
   * others for good, so a full disk is fatal too (the node restarts and replays from its mark).
   */
  replica = false;
  /** Added keys of `history` answers (read positions). */
  annotateHistory: HistoryAnnotate | undefined;

  constructor(private readonly store: Store, private readonly peers: Peers, private readonly limits: DeliveryLimits) {
    this.positions = new PositionBook(store.positions);
    this.retention = new Retention(store.log, limits);
    this.lastOffset = store.stats().lastOffset;
    this.gate = new DurableGate(store, { replica: () => this.replica, lost: () => this.lostFull(), fatal: (err) => this.onFatal(err) });
  }

  /**
   * Starts the age sweep. With `ageTrims` (cluster mode) the sweep only proposes trims; they are
   * applied by `trimApplied`, in the ledger's order, on every replica.
   */
  start(ageTrims?: (conv: ConvId, upTo: number) => void): void {
    this.retention.ageTrims = ageTrims;
    this.retention.start();
  }

  trimApplied(conv: ConvId, upTo: number): void { this.retention.trimApplied(conv, upTo); }

  // ---- what the deciding actors post ----

  /** Stores a post in its log (once; a resend with the same `mid` is answered, not stored again) and pushes it. */
  post(p: Post, now: number): void {
    const arrived = p.ackTo ? clock() : 0;
    if (p.conv === 'own') {
      for (const account of p.to) {
        const conv = accountConv(account);
        this.deliver(account, this.append(conv, p, now), p);
        this.retention.appended(conv);
      }
    } else {
      const dup = p.mid !== undefined && p.from !== null ? this.store.log.findMid(p.conv, p.from, p.mid) : undefined;
      if (dup !== undefined) {
        this.counters.duplicates++;
      } else {
        if (p.conv.startsWith('d:')) this.ensureMembers(p.conv, [p.from!, ...p.to]);
        this.record(p.conv, p, now);
      }
    }
    if (p.ackTo) {
      const { conn, frame } = p.ackTo;
      // Never a false acknowledgement: a record lost with a failed commit is answered with 45007.
      this.afterDurable(() => {
        this.peers.peer(conn)?.send(frame);
        deliveryLatencySeconds.observe(secondsSince(arrived));
      }, () => this.peers.peer(conn)?.send(refusedAnswer(frame, Code.STORAGE_FULL, STORAGE_FULL_TEXT)));
    }
  }

  /** Appends `p` to `conv`, pushes it to its recipients and to the sender's other own-sync sockets; returns its offset. */
  private record(conv: ConvId, p: Post, now: number): number {
    const offset = this.append(conv, p, now);
    for (const account of p.to) this.deliver(account, offset, p);
    if (p.from !== null && !p.to.includes(p.from)) this.echoOwn(p.from, conv, offset, p);
    this.retention.appended(conv);
    return offset;
  }

  /** Own-device sync (own.ts): the record to the sender's sockets that asked for it, but the sending one. */
  private echoOwn(account: string, conv: ConvId, offset: number, p: Post): void {
    const wants = (peer: Peer): boolean => peer.syncOwn === true && peer.id !== p.origin;
    const peers = this.peers.peersOf(account);
    if (!peers || ![...peers].some(wants)) return;
    const push = (): void => {
      const now = this.peers.peersOf(account);
      if (!now) return;
      const frame = renderOwnFrame(p.tpl, ownRecipient(conv, account), offset);
      let written = false;
      for (const peer of now) {
        if (!wants(peer)) continue;
        const sync = this.syncs.get(peer.id);
        if (sync) { this.hold(sync, frame, offset); continue; }
        if (peer.send(frame)) written = true;
      }
      if (written) this.positions.delivered(account, offset);
    };
    if (this.positions.get(account).ackMode) this.afterDurable(push);
    else push();
  }

  /** `edit` and `delete` (edits.ts): a new record in the conversation's log; the original is rewritten in place. */
  change(peer: Peer, r: Request): void {
    this.changeBy(peer.account!, peer.id, r, Date.now());
  }

  /**
   * Decides and records an `edit` or `delete` of `account` (from connection `conn`, answered
   * wherever it is held). In a cluster every replica runs this at the same point of the ledger, so
   * each decides alike, against everything stored before it.
   */
  changeBy(account: string, conn: number, r: Request, now: number): void {
    const d = decideChange(this.store, account, conn, r);
    if (!d.ok) return void this.peers.peer(conn)?.send(errorFrame(d.code, d.error, r));
    this.applyChange(d, now, conn, r.callback);
  }

  /** Records a decided change and rewrites its original; the requester (`conn`) is answered once durable. */
  private applyChange(d: ChangeOk, now: number, conn: number, callback: string | undefined): void {
    const offset = this.record(d.conv, d.post, now);
    applyChange(this.store.log, d, offset);
    const answer = changeAnswer(d, offset, callback);
    this.afterDurable(() => this.peers.peer(conn)?.send(answer), () => this.peers.peer(conn)?.send(refusedAnswer(answer, Code.STORAGE_FULL, STORAGE_FULL_TEXT)));
  }

  /** An actor's new state, with who joined or left its conversation; written in the same turn as its posts. */
  state(s: StateOut): void {
    this.store.states.put(s.address, s.state);
    if (s.conv === undefined) return;
    // A member reads the group's log from the next record on: nothing from before it joined.
    for (const a of s.joined ?? []) this.store.positions.join(a, s.conv, this.lastOffset + 1);
    for (const a of s.left ?? []) this.store.positions.leave(a, s.conv);
    // A group that is gone takes its log with it: nobody may read it any more.
    if (s.state === undefined) this.retention.drop(s.conv);
  }

  /**
   * Output that must wait until everything stored so far is durable. If the store was full and
   * the writes were lost instead, `lost` runs (when given) and `fn` never does.
   */
  afterDurable(fn: () => void, lost?: () => void): void {
    this.gate.after(fn, lost);
  }

  /** A turn's writes were lost to a full disk: the direct conversations it joined may be lost too. */
  private lostFull(): void {
    this.counters.lostFull++;
    this.knownConvs.clear();
  }

  private append(conv: ConvId, p: Post, now: number): number {
    const e = this.store.log.append({ conv, at: now, from: p.from, ...(p.mid !== undefined ? { mid: p.mid } : {}), head: p.tpl.head, tail: p.tpl.tail });
    this.lastOffset = e.offset;
    this.counters.appended++;
    return e.offset;
  }

  /** Both accounts of a direct conversation find it in their lists from its first message on. */
  private ensureMembers(conv: ConvId, accounts: string[]): void {
    if (this.knownConvs.has(conv)) return;
    for (const a of accounts) if (this.store.positions.membership(a, conv) === undefined) this.store.positions.join(a, conv, 0);
    this.knownConvs.set(conv, true);
  }

  /** Writes the record at `offset` to every socket of `account` (an acknowledging account's once durable). */
  private deliver(account: string, offset: number, p: { tpl: Template; except?: number }): void {
    const peers = this.peers.peersOf(account);
    if (!peers || peers.size === 0) return;
    const push = (): void => this.push(account, offset, p.tpl, p.except);
    if (this.positions.get(account).ackMode) this.afterDurable(push);
    else push();
  }

  private push(account: string, offset: number, tpl: Template, except: number | undefined): void {
    const peers = this.peers.peersOf(account);
    if (!peers) return;
    const frame = renderFrame(tpl, account, offset);
    let written = false;
    for (const peer of peers) {
      if (peer.id === except) { written = true; continue; }
      const sync = this.syncs.get(peer.id);
      if (sync) { this.hold(sync, frame, offset); continue; }
      if (peer.send(frame)) written = true;
    }
    if (written) {
      this.counters.pushed++;
      this.positions.delivered(account, offset);
    }
  }

  // ---- sign-in: the backlog ----

  /** Sends the connection what its account missed, in offset order; live frames wait behind it. */
  sync(peer: Peer, positions?: Promise<AccountPositions | undefined>): void {
    // A sync already under way covers a repeated `online`: the backlog is not sent twice.
    if (this.syncs.has(peer.id) || peer.account === undefined) return;
    const account = peer.account;
    const start = (s: Sync): void => {
      const p = this.positions.get(account);
      s.backlog = this.backlog(account, p.ackMode ? p.acked : p.delivered, peer.syncOwn === true);
      s.upTo = this.lastOffset;
      this.pump(s);
    };
    const s: Sync = { peer, backlog: new Backlog(this.store.log, { account, after: this.lastOffset, upTo: this.lastOffset, groupBacklog: 0, epoch: this.store.epoch }, []), upTo: this.lastOffset, held: [], heldBytes: 0, heldLast: 0, overflow: false };
    this.syncs.set(peer.id, s);
    if (positions === undefined) return start(s);
    // The account's positions come from elsewhere (cluster mode): live frames wait meanwhile, and
    // are dropped when the backlog starts, which covers them (it reads through the newest record).
    positions.then((p) => {
      if (p) this.positions.merge(account, p);
    }, (err: unknown) => this.log.warn({ err, account }, 'positions not read from the engine: the backlog starts from the cached ones')).finally(() => {
      if (this.syncs.get(peer.id) !== s) return;
      s.held = []; s.heldBytes = 0; s.heldLast = 0; s.overflow = false;
      start(s);
    });
  }

  private backlog(account: string, after: number, own: boolean): Backlog {
    const memberships = [{ conv: accountConv(account), since: 0 }, ...this.store.positions.memberships(account)];
    return new Backlog(this.store.log, { account, after, upTo: this.lastOffset, groupBacklog: this.limits.groupBacklog, epoch: this.store.epoch, own }, memberships);
  }

  private pump(s: Sync): void {
    const { peer } = s;
    const account = peer.account;
    if (account === undefined || this.peers.peer(peer.id) !== peer || this.syncs.get(peer.id) !== s) {
      if (this.syncs.get(peer.id) === s) this.syncs.delete(peer.id);
      return;
    }
    const ackMode = this.positions.get(account).ackMode;
    // The backlog goes out as the socket drains: a quarter of what would get the socket dropped may
    // wait at a time, checked before every frame (a frame is at most an eighth of it, see config).
    const pause = this.limits.maxBuffered / 4;
    for (let sent = 0; sent < SYNC_TURN; sent++) {
      if (peer.bufferedAmount > pause) { setTimeout(() => this.pump(s), 10); return; }
      const { frames, last } = s.backlog.next(1);
      if (last === 0) return this.caughtUp(s, account);
      for (const f of frames) peer.send(f);
      this.counters.backlogFrames += frames.length;
      if (!ackMode) this.positions.delivered(account, last);
    }
    setImmediate(() => this.pump(s));
  }

  private caughtUp(s: Sync, account: string): void {
    if (s.overflow) {
      // What was held and dropped is in the logs: read on from where this pass ended.
      s.overflow = false;
      s.backlog = this.backlog(account, s.upTo, s.peer.syncOwn === true);
      s.upTo = this.lastOffset;
      return void setImmediate(() => this.pump(s));
    }
    this.syncs.delete(s.peer.id);
    for (const f of s.held) s.peer.send(f);
    if (s.held.length > 0 && !this.positions.get(account).ackMode) this.positions.delivered(account, s.heldLast);
  }

  private hold(s: Sync, frame: string, offset: number): void {
    if (s.overflow) return;
    s.held.push(frame);
    s.heldBytes += frame.length;
    s.heldLast = offset;
    if (s.held.length > HELD_MAX || s.heldBytes > HELD_BYTES) {
      s.held = [];
      s.heldBytes = 0;
      s.heldLast = 0;
      s.overflow = true;
    }
  }

  // ---- requests of signed-in connections ----

  ack(account: string, upTo: number): void {
    this.positions.acked(account, Math.min(upTo, this.lastOffset));
  }

  history(peer: Peer, r: Request): void {
    const a = readHistory(this.store.log, this.store.positions, this.store.epoch, peer.account!, r, this.limits.maxBuffered / 4, this.annotateHistory);
    peer.send(a.ok ? a.frame : errorFrame(a.code, a.error, r));
  }

  /** A record moved in from another store (cluster import): appended as it was, pushed to no one. */
  importRecord(e: NewEntry): number {
    const stored = this.store.log.append(e);
    this.lastOffset = stored.offset;
    this.counters.appended++;
    return stored.offset;
  }

  /** A notice or message from the first service's backup file, kept in the account's own log. */
  importOwn(account: string, tpl: Template, at: number): void {
    this.append(accountConv(account), { t: 'post', conv: 'own', tpl, from: null, to: [account] }, at);
  }

  /** A connection closed: its backlog stops. */
  closed(peer: Peer): void {
    if (this.syncs.get(peer.id)?.peer === peer) this.syncs.delete(peer.id);
  }

  stats(): Record<string, unknown> {
    return { ...this.counters, accountsCached: this.positions.size, syncing: this.syncs.size, ...this.retention.stats(), store: this.store.stats() };
  }

  /** Writes what is pending and waits until it is durable and released. */
  async settle(): Promise<void> {
    this.positions.write();
    await this.gate.settle();
  }

  async close(): Promise<void> {
    this.retention.stop();
    await this.settle();
  }
}
