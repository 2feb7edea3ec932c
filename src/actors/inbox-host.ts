/**
 * Hosts the inbox actors (one per account) on the thread that holds the sockets, next to the
 * connection actors, as a session process lives next to its connection: a message for an online
 * account goes from one connection to the other without crossing a thread (the profile of the
 * first design, with inboxes on worker threads, showed the two thread hops costing more than all
 * the rest of the hot path). Inbox state has its own journal and checkpoints in `<data>/accounts`,
 * written by this thread alone; output leaves only once the events behind it are durable.
 */
import { join } from 'node:path';
import type { Template } from '../protocol/frames';
import { logger } from '../log';
import * as inbox from './inbox';
import { applyInbox, emptyInbox, type InboxEvent, type InboxState } from './inbox-state';
import type { InboxLimits } from './inbox';
import type { Persistence, PersistenceConfig } from './persistence';
import { StorePersistence } from '../store/shard-persistence';
import { initDataDir } from '../store/layout';
import { inboxAddress } from '../supervisor/placement';

/** Subdirectory of the data directory that holds the inboxes' journal and checkpoints. */
export const ACCOUNTS_DIR = 'accounts';

/** Sequenced frames to write to every socket of each account (all but `except`). */
export interface Push { tpl: Template; accounts: string[]; seqs: number[]; except?: number }

export interface InboxOutput {
  push(p: Push): void;
  /** One frame for one connection (backlogs, acknowledgements to senders). */
  reply(conn: number, frame: string): void;
}

export interface DeliverOptions {
  except?: number;
  /** Sender and message id: a resend with the same key is taken once. */
  key?: string;
  /** The sender's acknowledgement, sent once the message is durable. */
  ackTo?: { conn: number; frame: string };
}

type Out = { t: 'push'; p: Push } | { t: 'reply'; conn: number; frame: string };

/**
 * When output may leave.
 * - `live`: at once. A frame relayed to an online account that does not acknowledge changes no
 *   state anyone relies on (only its sequence number is recorded, within `LAZY_WRITE_MS`).
 * - `written`: once the turn's records are written (in the kernel: they survive a crash of the
 *   process): a backlog, whose delivery is a state change.
 * - `durable`: only after the fsync: whatever a client may rely on, a sender's acknowledgement
 *   and a frame kept until an acknowledging account confirms it.
 */
type Release = 'live' | 'written' | 'durable';

/** Longest time a record no output waits for stays unwritten (saves a write syscall per turn at low load). */
const LAZY_WRITE_MS = 5;

export class InboxHost {
  private readonly inboxes = new Map<string, InboxState>();
  private out: Out[] = [];
  private outWritten: Out[] = [];
  private outLive: Out[] = [];
  private lazyWrite: NodeJS.Timeout | undefined;
  private scheduled = false;
  private released: Promise<void> = Promise.resolve();
  private readonly log = logger({ part: 'inboxes' });

  private constructor(private readonly store: Persistence, private readonly limits: InboxLimits, private readonly output: InboxOutput) {}

  static async open(cfg: Omit<PersistenceConfig, 'index' | 'partitionsOwned'>, limits: InboxLimits, output: InboxOutput): Promise<InboxHost> {
    const dataDir = join(cfg.dataDir, ACCOUNTS_DIR);
    initDataDir(dataDir, cfg.partitions);
    const all = Array.from({ length: cfg.partitions }, (_, p) => p);
    const store = await StorePersistence.open({ ...cfg, dataDir, index: -1, partitionsOwned: all });
    const host = new InboxHost(store, limits, output);
    for (const [address, state] of Object.entries(store.snapshotStates() ?? {})) host.inboxes.set(address.slice(6), state as InboxState);
    for (const [address, ev] of store.restored()) applyInbox(host.inbox(address.slice(6)), ev as InboxEvent);
    store.onCheckpointDue(() => host.snapshot());
    return host;
  }

  private inbox(account: string): InboxState {
    let s = this.inboxes.get(account);
    if (!s) { s = emptyInbox(); this.inboxes.set(account, s); }
    return s;
  }

  /** The one place inbox state changes: apply, then journal. */
  private commit(account: string, events: InboxEvent[]): void {
    const s = this.inbox(account);
    for (const ev of events) {
      applyInbox(s, ev);
      this.store.record(inboxAddress(account), ev);
    }
    // Every recorded event gets written this turn or within LAZY_WRITE_MS, output or not.
    if (events.length > 0) this.schedule();
  }

  /** One message for several accounts, serialized once (`tpl`); `online[i]` says who has a socket now. */
  deliver(accounts: string[], online: boolean[], tpl: Template, now: number, opts: DeliverOptions = {}): void {
    const live: Push = { tpl, accounts: [], seqs: [] };
    const kept: Push = { tpl, accounts: [], seqs: [] };
    if (opts.except !== undefined) live.except = kept.except = opts.except;
    for (let i = 0; i < accounts.length; i++) {
      const account = accounts[i]!;
      const s = this.inbox(account);
      const r = inbox.deliverTo(s, account, online[i]!, tpl, now, this.limits, opts.key);
      this.commit(account, r.events);
      if (r.push === null) continue;
      const to = s.ackMode ? kept : live;
      to.accounts.push(account);
      to.seqs.push(r.push);
    }
    if (live.accounts.length > 0) this.emit({ t: 'push', p: live }, 'live');
    if (kept.accounts.length > 0) this.emit({ t: 'push', p: kept }, 'durable');
    if (opts.ackTo) this.emit({ t: 'reply', ...opts.ackTo }, 'durable');
  }

  /** Everything kept for the account, for the connection that just signed in. */
  drain(account: string, conn: number, now: number): void {
    const s = this.inbox(account);
    this.commit(account, inbox.bound(s, account, now, this.limits));
    const { frames, events } = inbox.drain(s, account);
    this.commit(account, events);
    for (const frame of frames) this.emit({ t: 'reply', conn, frame }, 'written');
  }

  ack(account: string, upTo: number): void {
    this.commit(account, inbox.ack(this.inbox(account), upTo));
  }

  /** Frames that found no socket after all go back to being kept. */
  bounce(account: string, seqs: number[], tpl: Template, now: number): void {
    this.commit(account, inbox.bounce(this.inbox(account), account, seqs, tpl, now, this.limits));
  }

  /** History brought from the first service's backup file: kept as for an absent account. */
  importHistory(account: string, frames: Template[], now: number): void {
    for (const tpl of frames) this.commit(account, inbox.deliverTo(this.inbox(account), account, false, tpl, now, this.limits).events);
  }

  private emit(o: Out, when: Release): void {
    (when === 'durable' ? this.out : when === 'written' ? this.outWritten : this.outLive).push(o);
    this.schedule();
  }

  /**
   * Output of this turn leaves together, once its events are durable: one journal write (and, with
   * fsync grouped, one fdatasync) covers everything every socket sent in the turn.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.release());
  }

  private release(): void {
    this.scheduled = false;
    const out = this.out;
    const written = this.outWritten;
    const live = this.outLive;
    this.out = [];
    this.outWritten = [];
    this.outLive = [];
    // Records are written when some output waits on them (the fsync only when `durable` output
    // does), else within LAZY_WRITE_MS; the journal keeps their order either way.
    let durable: Promise<void> = Promise.resolve();
    if (out.length > 0) durable = this.writeNow(true);
    else if (written.length > 0) void this.writeNow(false);
    else this.lazyWrite ??= setTimeout(() => void this.writeNow(false), LAZY_WRITE_MS);
    for (const o of live) this.send(o);
    for (const o of written) this.send(o);
    this.released = this.released
      .then(() => durable)
      .then(() => { for (const o of out) this.send(o); })
      .catch((err: unknown) => {
        // Output that cannot be made durable must not be released; the process restarts from disk.
        this.log.fatal({ err }, 'inbox journal write failed');
        process.exit(1);
      });
  }

  private writeNow(fsync: boolean): Promise<void> {
    clearTimeout(this.lazyWrite);
    this.lazyWrite = undefined;
    if (fsync) return this.store.flush();
    this.store.write();
    return Promise.resolve();
  }

  private send(o: Out): void {
    if (o.t === 'push') this.output.push(o.p);
    else this.output.reply(o.conn, o.frame);
  }

  /** Resolves once everything handed over so far is durable and released. */
  settle(): Promise<void> {
    if (this.scheduled) this.release();
    void this.writeNow(false);
    return this.released;
  }

  snapshot(): Record<string, unknown> {
    return Object.fromEntries([...this.inboxes].map(([a, s]) => [inboxAddress(a), s]));
  }

  stats(): { inboxes: number; stored: number; dropped: number; persistence: unknown } {
    let stored = 0;
    let dropped = 0;
    for (const s of this.inboxes.values()) {
      stored += s.stored.length;
      dropped += s.dropped;
    }
    return { inboxes: this.inboxes.size, stored, dropped, persistence: this.store.stats() };
  }

  /** Graceful stop: release what is pending, write a checkpoint, close the files. */
  async close(): Promise<void> {
    await this.settle();
    await this.store.checkpoint(this.snapshot());
    await this.store.close();
  }
}
