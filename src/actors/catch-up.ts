/**
 * Sign-in catch-up: a connection that signs in is sent what its account missed, read from the
 * logs in offset order as its socket drains, while live frames for it are held behind the backlog
 * (or, past a bound, dropped and read from the log on one more pass).
 *
 * A file of its own because it is the one part of delivery with state per connection that lasts
 * across turns (a backlog, timers, held frames); the fan-out only asks it whether a connection is
 * still catching up, so frames reach an account in offset order.
 */
import { logger } from '../log';
import { accountConv, StoreError, type AccountPositions, type Membership, type Store } from '../store/ports';
import type { PositionBook } from './account-positions';
import type { BacklogSource, LogReads } from './log-reads';
import type { Peer, Peers } from './peer';
import { SyncQueue } from './sync-queue';

export interface CatchUpLimits {
  /** Newest records of a group delivered at sign-in. */
  groupBacklog: number;
  /** Bytes a socket may have waiting before it is dropped (see Connection.send). */
  maxBuffered: number;
  /** Backlogs read at once (sync-queue.ts); the rest wait their turn. 0: no bound; absent: 64. */
  signinBacklogs?: number;
}

/** Backlog frames written per turn to one connection. */
const SYNC_TURN = 256;
/** A backlog that could not be read whole is read again after this long. */
const RETRY_MS = 1000;
/** Live frames a connection still reading its backlog may hold; past this it reads them from the log. */
const HELD_MAX = 5000;
const HELD_BYTES = 4 * 1024 * 1024;

interface Sync {
  peer: Peer;
  backlog: BacklogSource;
  /** The backlog covers offsets up to here; anything later arrives live (held meanwhile). */
  upTo: number;
  held: string[];
  heldBytes: number;
  /** Offset of the newest frame held. */
  heldLast: number;
  /** Held frames overflowed and were dropped: read them from the log after this pass. */
  overflow: boolean;
  /** The offset of the last backlog record sent in this sync (where a pass that ended early reads on). */
  sentThrough: number;
}

export class CatchUp {
  private readonly syncs = new Map<number, Sync>();
  /** Turns to read a backlog: a reconnect storm reads a bounded number at once (sync-queue.ts). */
  private readonly turns: SyncQueue<Sync>;
  private readonly log = logger({ part: 'delivery' });

  /**
   * `lastOffset` is the newest record stored; backlog frames sent are counted in `counters`.
   * Backlogs are read through `reads` (log-reads.ts); the store gives the account's memberships.
   */
  constructor(
    private readonly store: Store,
    private readonly reads: LogReads,
    private readonly peers: Peers,
    private readonly positions: PositionBook,
    private readonly limits: CatchUpLimits,
    private readonly lastOffset: () => number,
    private readonly counters: { backlogFrames: number; backlogRetries: number },
  ) {
    this.turns = new SyncQueue(limits.signinBacklogs ?? 64);
  }

  /** Connections still reading their backlog, or waiting for their turn to. */
  get size(): number { return this.syncs.size; }
  /** Of them, those waiting for their turn. */
  get waiting(): number { return this.turns.queued; }

  /** Sends the connection what its account missed, in offset order; live frames wait behind it. */
  sync(peer: Peer, positions?: Promise<AccountPositions | undefined>): void {
    // A sync already under way covers a repeated `online`: the backlog is not sent twice.
    if (this.syncs.has(peer.id) || peer.account === undefined) return;
    const account = peer.account;
    const s = this.open(peer, account);
    if (positions === undefined) return this.queue(s, account);
    // The account's positions come from elsewhere (cluster mode): live frames wait meanwhile, covered
    // by the backlog when it starts (it reads through the newest record).
    positions.then((p) => {
      if (p) this.positions.merge(account, p);
    }, (err: unknown) => this.log.warn({ err, account }, 'positions not read from the engine: the backlog starts from the cached ones')).finally(() => {
      if (this.syncs.get(peer.id) === s) this.queue(s, account);
    });
  }

  /**
   * Reads the backlog when its turn comes. Live frames for the connection are not sent meanwhile
   * (nor kept): the backlog, read through the newest record when it starts, covers them.
   */
  private queue(s: Sync, account: string): void {
    this.turns.enter(s, () => {
      if (this.syncs.get(s.peer.id) !== s || this.peers.peer(s.peer.id) !== s.peer) return this.end(s);
      dropHeld(s);
      s.overflow = false;
      this.start(s, account);
    });
  }

  /** The sync is over (caught up or its connection gone): its turn goes to the next. */
  private end(s: Sync): void {
    s.backlog.close();
    if (this.syncs.get(s.peer.id) === s) this.syncs.delete(s.peer.id);
    this.turns.leave(s);
  }

  /** Holds a live frame for `peer` if it is still catching up (true); false: it may be written now. */
  held(peer: Peer, frame: string, offset: number): boolean {
    const s = this.syncs.get(peer.id);
    if (!s) return false;
    if (!s.overflow) hold(s, frame, offset);
    return true;
  }

  /** A connection closed: its backlog stops. */
  closed(peer: Peer): void {
    const s = this.syncs.get(peer.id);
    if (s?.peer === peer) this.end(s);
  }

  /** A sync with an empty backlog: live frames wait (unsent) until its positions are known and its turn comes. */
  private open(peer: Peer, account: string): Sync {
    const last = this.lastOffset();
    // Until the backlog starts nothing is held (as if overflowed): it reads through the newest record
    // then, so it covers every live frame of the wait, and a thousand waiting sockets hold no frames.
    const s: Sync = { peer, backlog: EMPTY, upTo: last, held: [], heldBytes: 0, heldLast: 0, overflow: true, sentThrough: 0 };
    this.syncs.set(peer.id, s);
    return s;
  }

  private start(s: Sync, account: string): void {
    const p = this.positions.get(account);
    s.sentThrough = p.ackMode ? p.acked : p.delivered;
    this.readFrom(s, account, s.sentThrough);
    this.pump(s);
  }

  /** The backlog of `account` after `after`, through the newest record stored now. */
  private readFrom(s: Sync, account: string, after: number): void {
    const memberships = [{ conv: accountConv(account), since: 0 }, ...this.membershipsOf(account)];
    const upTo = this.lastOffset();
    s.backlog.close();
    s.backlog = this.reads.backlog({ account, after, upTo, groupBacklog: this.limits.groupBacklog, epoch: this.store.epoch, own: s.peer.syncOwn === true }, memberships);
    s.upTo = upTo;
  }

  /** The account's conversations; none but its own log if the store cannot read them (logged, the process goes on). */
  private membershipsOf(account: string): Membership[] {
    try {
      return this.store.positions.memberships(account);
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      this.log.error({ err, account }, 'memberships could not be read: the backlog covers the account\'s own log only');
      return [];
    }
  }

  private pump(s: Sync): void {
    const { peer } = s;
    const account = peer.account;
    if (account === undefined || this.peers.peer(peer.id) !== peer || this.syncs.get(peer.id) !== s) return this.end(s);
    const ackMode = this.positions.get(account).ackMode;
    // The backlog goes out as the socket drains: a quarter of what would get the socket dropped may
    // wait at a time, checked before every frame (a frame is at most an eighth of it, see config).
    const pause = this.limits.maxBuffered / 4;
    for (let sent = 0; sent < SYNC_TURN; sent++) {
      if (peer.bufferedAmount > pause) { setTimeout(() => this.pump(s), 10); return; }
      const { frames, last } = s.backlog.next(1);
      if (last === 0) return this.drained(s, account);
      for (const f of frames) peer.send(f);
      s.sentThrough = last;
      this.counters.backlogFrames += frames.length;
      if (!ackMode) this.positions.delivered(account, last);
    }
    setImmediate(() => this.pump(s));
  }

  /** Nothing more here now: wait for what is on its way (read from another node), or the pass is over. */
  private drained(s: Sync, account: string): void {
    const more = s.backlog.waiting();
    if (more === undefined) return this.caughtUp(s, account);
    // `waiting` never rejects; the pump checks on resuming that the connection is still there.
    void more.then(() => this.pump(s));
  }

  private caughtUp(s: Sync, account: string): void {
    if (s.backlog.incomplete?.() === true) {
      // Part of the backlog was not read (its owner did not answer): nothing later may go out before
      // it, or the account's positions would pass it. Live frames are dropped meanwhile (they are in
      // the logs) and the backlog is read again from the last record sent, a moment later.
      this.counters.backlogRetries++;
      s.overflow = true;
      dropHeld(s);
      return void setTimeout(() => {
        if (this.syncs.get(s.peer.id) !== s) return;
        this.readFrom(s, account, s.sentThrough);
        this.pump(s);
      }, RETRY_MS).unref();
    }
    if (s.overflow) {
      // What was held and dropped is in the logs: read on from where this pass ended.
      s.overflow = false;
      this.readFrom(s, account, s.upTo);
      return void setImmediate(() => this.pump(s));
    }
    this.end(s);
    for (const f of s.held) s.peer.send(f);
    if (s.held.length > 0 && !this.positions.get(account).ackMode) this.positions.delivered(account, s.heldLast);
  }
}

/** The backlog of a sync that has not started yet. */
const EMPTY: BacklogSource = { next: () => ({ frames: [], last: 0 }), waiting: () => undefined, close: () => undefined };

/** Keeps a live frame behind the backlog; past the bound all held frames go and the log is read again. */
function hold(s: Sync, frame: string, offset: number): void {
  s.held.push(frame);
  s.heldBytes += frame.length;
  s.heldLast = offset;
  if (s.held.length > HELD_MAX || s.heldBytes > HELD_BYTES) {
    dropHeld(s);
    s.overflow = true;
  }
}

function dropHeld(s: Sync): void {
  s.held = [];
  s.heldBytes = 0;
  s.heldLast = 0;
}
