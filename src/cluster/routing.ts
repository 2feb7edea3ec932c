/**
 * Routing a call to the node that owns its actor's partition: decided here when this node serves
 * it, sent to the owner when another does, and while nobody owns it (a take-over under way) held
 * in a bounded queue for up to WAIT_OWNER_MS, then refused (45003, retry).
 */
import type { GroupCall, VerifyCall } from '../actors/envelopes';
import { convPartition, groupAddress, VERIFY_ADDRESS } from '../actors/address';
import { conversationOf } from '../actors/conversation-ref';
import { partitionOf } from '../hash';
import { Code } from '../protocol/codes';
import { errorFrame, refusedAnswer } from '../protocol/frames';
import type { OwnedCall } from './owned';

/** How long a group call waits for its partition to have an owner before it is refused. */
export const WAIT_OWNER_MS = 10_000;
/** Calls waiting for owners, at most (past it they are refused at once). */
export const WAITING_MAX = 10_000;
/** A call forwarded more often than this (nodes disagreeing about an owner for a moment) is refused. */
export const MAX_HOPS = 3;

export const MOVED_TEXT = 'this conversation is moving between servers, please retry';

export interface RoutingDeps {
  readonly self: string;
  readonly partitions: number;
  /** The node serving `partition` now, as this node knows it (undefined: none). */
  ownerOf(partition: number): string | undefined;
  /** Decided on this node. */
  decide(call: GroupCall): void;
  verify(call: VerifyCall): void;
  /** Sent to another node's mailbox. */
  forward(node: string, call: GroupCall): void;
  forwardVerify(node: string, call: VerifyCall): void;
  /** A post or change for the records of a partition this node serves. */
  owned(call: OwnedCall, partition: number): void;
  forwardOwned(node: string, call: OwnedCall): void;
  sendTo(conn: number, frame: string): void;
}

type Hopping = GroupCall & { hops?: number };
/** A call waiting for its partition's owner: sent on (`again`) once known, or refused. */
interface Waiting { again(): void; refuse(): void; since: number }

export class Routing {
  private readonly waiting = new Map<number, Waiting[]>();
  private waitingCount = 0;
  readonly counters = { forwarded: 0, refusedMoved: 0 };

  constructor(private readonly deps: RoutingDeps, private readonly clock: () => number = Date.now) {}

  get waitingCalls(): number { return this.waitingCount; }

  /** A group call: decided here if this node serves its partition, else sent to the node that does, else held. */
  group(call: Hopping, partition = partitionOf(groupAddress(call.id), this.deps.partitions)): void {
    this.route(call, partition, {
      here: (c) => this.deps.decide(c),
      forward: (node, c) => this.deps.forward(node, c),
      again: () => this.group(call, partition),
      refuse: () => this.refuse(call),
    });
  }

  /** A direct message or an edit: where its conversation's records are kept, like a group call. */
  owned(call: OwnedCall, partition = convPartition(call.t === 'post' ? call.op.post.conv : ownedConv(call), this.deps.partitions)): void {
    this.route(call, partition, {
      here: (c) => this.deps.owned(c, partition),
      forward: (node, c) => this.deps.forwardOwned(node, c),
      again: () => this.owned(call, partition),
      refuse: () => this.refuseOwned(call),
    });
  }

  /**
   * Decided here when this node serves `partition`; sent on (one hop more) to the node that does;
   * with no owner known (or too many hops), held until one is (bounded in number and time) or refused.
   */
  private route<C extends { hops?: number }>(call: C, partition: number, to: { here(c: C): void; forward(node: string, c: C): void; again(): void; refuse(): void }): void {
    const owner = this.deps.ownerOf(partition);
    const hops = call.hops ?? 0;
    if (owner === this.deps.self) return to.here(call);
    if (owner !== undefined && hops < MAX_HOPS) {
      this.counters.forwarded++;
      return to.forward(owner, { ...call, hops: hops + 1 });
    }
    if (this.waitingCount >= WAITING_MAX || hops >= MAX_HOPS) return to.refuse();
    const list = this.waiting.get(partition);
    const w = { again: to.again, refuse: to.refuse, since: this.clock() };
    if (list) list.push(w); else this.waiting.set(partition, [w]);
    this.waitingCount++;
  }

  /** A call for the verification actor: where its partition is served; with no owner a request is refused, the rest dropped. */
  verify(call: VerifyCall): void {
    const owner = this.deps.ownerOf(partitionOf(VERIFY_ADDRESS, this.deps.partitions));
    if (owner === this.deps.self) return this.deps.verify(call);
    if (owner !== undefined) return this.deps.forwardVerify(owner, call);
    if (call.op === 'reg' || call.op === 'proof') this.deps.sendTo(call.conn, errorFrame(Code.UNAVAILABLE, MOVED_TEXT, call.request));
  }

  /** The owner of `partition` is known: its waiting calls go. */
  release(partition: number): void {
    const list = this.waiting.get(partition);
    if (!list || this.deps.ownerOf(partition) === undefined) return;
    this.waiting.delete(partition);
    this.waitingCount -= list.length;
    for (const w of list) w.again();
  }

  /** Refuses the calls that waited WAIT_OWNER_MS or more (run every second). */
  expire(): void {
    const now = this.clock();
    for (const [p, list] of this.waiting) {
      const keep = list.filter((w) => now - w.since < WAIT_OWNER_MS);
      for (const w of list) if (now - w.since >= WAIT_OWNER_MS) w.refuse();
      this.waitingCount -= list.length - keep.length;
      if (keep.length === 0) this.waiting.delete(p); else this.waiting.set(p, keep);
    }
  }

  private refuse(call: GroupCall): void {
    this.counters.refusedMoved++;
    this.deps.sendTo(call.origin.conn, errorFrame(Code.UNAVAILABLE, MOVED_TEXT, call.origin.request));
  }

  /** A post is refused through its acknowledgement (a post asked without one is not answered); a change to its asker. */
  refuseOwned(call: OwnedCall): void {
    this.counters.refusedMoved++;
    if (call.t === 'change') return this.deps.sendTo(call.call.conn, errorFrame(Code.UNAVAILABLE, MOVED_TEXT, call.call.request));
    const ack = call.op.post.ackTo;
    if (ack) this.deps.sendTo(ack.conn, refusedAnswer(ack.frame, Code.UNAVAILABLE, MOVED_TEXT));
  }
}

/** The conversation an edit or delete names (a group's, or the pair's of the asker and `with`). */
function ownedConv(call: Extract<OwnedCall, { t: 'change' }>): string {
  const ref = conversationOf(call.call.account, call.call.request);
  // Unnamed (refused where it is decided): any partition decides it alike.
  return ref?.conv ?? '';
}
