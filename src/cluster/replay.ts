/**
 * Replaying the ledger on this node: each entry, in stream order, handed to the node's applier
 * (carrier/applier.ts, the same one the embedded mode uses), and the replica's mark moved past it.
 * What never made it into the ledger (void, fenced, not stored) is refused to whoever waited for
 * it. States this node wrote and has not applied yet are remembered, so a reload never reads an
 * older one from the replica.
 */
import type { Logger } from 'pino';
import type { Local } from '../carrier/port';
import { Code } from '../protocol/codes';
import { changeAnswer } from '../actors/edits';
import { refusedAnswer } from '../protocol/frames';
import { firstOffset, type Entry, type Op } from './entry';
import { concerns, type Reader } from './interest';
import type { LedgerHooks } from './ledger';
import type { Replica } from './replica';

/**
 * An entry whose requesters were told it failed: the same changes, no answers (a post keeps its
 * record but not its acknowledgement; a change answers connection 0, which no node holds).
 */
export function silenced(entry: Entry): Entry {
  const ops: Op[] = [];
  for (const op of entry.ops) {
    if (op.t === 'reply') continue;
    if (op.t === 'post' && op.post.ackTo) { const { ackTo: _ackTo, ...post } = op.post; ops.push({ ...op, post }); continue; }
    if (op.t === 'change') { ops.push({ ...op, conn: 0 }); continue; }
    ops.push(op);
  }
  return { ...entry, ops };
}

/** States written to the ledger by this node and not applied yet: the newest, and how many are under way. */
export class PendingStates {
  private readonly states = new Map<string, { state: unknown; n: number }>();

  /** Operations about to be published: their states count as pending. */
  published(ops: readonly Op[]): void {
    for (const op of ops) {
      if (op.t !== 'state') continue;
      const p = this.states.get(op.state.address);
      if (p) { p.state = op.state.state; p.n++; } else this.states.set(op.state.address, { state: op.state.state, n: 1 });
    }
  }

  /** One state of `address` was applied (or refused): no longer under way. */
  settled(address: string): void {
    const p = this.states.get(address);
    if (p && --p.n <= 0) this.states.delete(address);
  }

  get(address: string): { state: unknown } | undefined { return this.states.get(address); }
}

export interface ReplayDeps {
  readonly nodeId: string;
  readonly partitions: number;
  readonly replica: Replica;
  /** The node's local side (there from start on). */
  local(): Local;
  /** A frame for any connection of the cluster. */
  sendTo(conn: number, frame: string): void;
  /** This node's write to `partition` was refused: another node claimed it. */
  fenced(partition: number): void;
  /** Which conversations' records this node keeps (stored-partitions.ts); told of every claim. */
  readonly stored: { stores(conv: string): boolean; keeps(partition: number): boolean; claimed(partition: number, node: string, seq: number): void };
  /** This node's own operations are applied or refused (owned.ts: posts no longer in flight). */
  settled(ops: readonly Op[]): void;
  /** This node's own operations were published without an answer: they may be stored yet (owned.ts). */
  doubtful(ops: readonly Op[]): void;
  /** The node cannot go on (its replica fell behind a trimmed ledger). */
  fatal(err: Error): void;
  readonly log: Logger;
}

export class Replay {
  readonly pending = new PendingStates();
  /** Operations refused because they never made it into the ledger. */
  refused = 0;

  private readonly reader: Reader;

  constructor(private readonly deps: ReplayDeps) {
    this.reader = { self: deps.nodeId, keeps: (p) => deps.stored.keeps(p), mayHold: (accounts) => deps.local().mayHold(accounts) };
  }

  /** What the ledger calls back with, in stream order. */
  hooks(): LedgerHooks {
    return {
      apply: (entry, seq, quiet) => this.apply(quiet ? silenced(entry) : entry, seq),
      voided: (entry, seq) => {
        if (entry.node === this.deps.nodeId) this.refuse(entry.ops, 'the cluster\'s store did not answer in time, please retry');
        this.deps.replica.appliedThrough(seq);
      },
      fenced: (p, ops) => { this.deps.fenced(p); this.refuse(ops, 'this conversation is moving between servers, please retry'); },
      trimmedPast: (applied, next) => {
        this.deps.fatal(new Error(`the ledger was trimmed past this node (applied through ${applied}, the ledger goes on at ${next}): it stops; started again, it loads the snapshots`));
      },
      failed: (ops, err) => {
        this.deps.log.warn({ err, ops: ops.length }, 'ledger write failed: its requests are refused');
        this.deps.doubtful(ops);
        this.refuse(ops, 'the cluster\'s store is not reachable, please retry');
      },
      interest: {
        context: {
          partitions: this.deps.partitions,
          // Published by the conversation's keeper (owned.ts), which knows whether it has a record yet.
          fresh: (conv) => this.deps.replica.log.top(conv) === undefined,
        },
        concerns: (i) => concerns(i, this.reader),
        passed: (i, seq) => {
          if (i.records > 0) this.deps.local().passed(firstOffset(seq) + i.records - 1);
          this.deps.replica.appliedThrough(seq);
        },
      },
    };
  }

  /**
   * An entry, on every node alike: its records numbered from its sequence on, stored where this
   * node keeps their conversations, written to the sockets here; states applied everywhere.
   */
  private apply(entry: Entry, seq: number): void {
    const own = entry.node === this.deps.nodeId;
    if (own) for (const op of entry.ops) if (op.t === 'state') this.pending.settled(op.state.address);
    for (const op of entry.ops) {
      if (op.t !== 'claim') continue;
      this.deps.stored.claimed(op.partition, op.node, seq);
      // Claimed by another node: this one writes it no more (it would be fenced at its next entry anyway).
      if (op.node !== this.deps.nodeId) this.deps.fenced(op.partition);
    }
    this.deps.local().apply(entry.ops, { first: firstOffset(seq), stores: this.deps.stored.stores });
    if (own) this.deps.settled(entry.ops);
    this.deps.replica.appliedThrough(seq);
  }

  /** Operations that were never stored: whoever waited for them hears so (45003, retry). */
  refuse(ops: readonly Op[], text: string): void {
    this.deps.settled(ops);
    const send = (conn: number, frame: string): void => this.deps.sendTo(conn, frame);
    for (const op of ops) {
      switch (op.t) {
        case 'post': if (op.post.ackTo) send(op.post.ackTo.conn, refusedAnswer(op.post.ackTo.frame, Code.UNAVAILABLE, text)); break;
        case 'reply': send(op.conn, refusedAnswer(op.frame, Code.UNAVAILABLE, text)); break;
        case 'change': send(op.conn, refusedAnswer(changeAnswer(op.change, 0, op.callback), Code.UNAVAILABLE, text)); break;
        case 'state': this.pending.settled(op.state.address); break;
        case 'append': case 'join': case 'trim': case 'claim': break;
      }
    }
    this.refused += ops.length;
  }
}
