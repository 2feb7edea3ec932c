/**
 * A node's part in a cluster (`--cluster nats://…`): the engine connection, the ledger it writes
 * and replays, the partitions it owns, and the mailboxes to the other nodes. The node stays the
 * switchboard; this is where its switches lead when the answer is "another node" or "the ledger".
 *
 * What goes where:
 * - a group call: to the node that owns its partition (here: the local shard); while nobody owns
 *   it (a take-over under way) it waits, up to WAIT_OWNER_MS, then is refused (45003, retry);
 * - what an actor decided (posts, states, answers to changes): into the ledger, on the route of
 *   its partition; the node's own requests (direct messages, edits, sign-in state) on its node route;
 * - a frame for a connection of another node: to that node's mailbox.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { GroupCall, Post, Reply, StateOut, VerifyCall } from '../actors/envelopes';
import { Engine } from '../cluster/engine';
import { type Entry, type Op } from '../cluster/entry';
import { Ledger } from '../cluster/ledger';
import { connIdBase, Links, nodeOfConn } from '../cluster/links';
import { HEARTBEATS_TO_EXPIRE, Ownership, type NodeInfo } from '../cluster/ownership';
import { EnginePositions } from '../cluster/positions';
import { Replica } from '../cluster/replica';
import { PresenceSync, type PresenceLocal } from '../cluster/presence-sync';
import { Code } from '../protocol/codes';
import { errorFrame, refusedAnswer } from '../protocol/frames';
import { partitionOf } from '../hash';
import type { Settings } from '../config';
import { newServerKeySeed } from '../chain/token';

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

/** How long a group call waits for its partition to have an owner before it is refused. */
const WAIT_OWNER_MS = 10_000;
/** Calls waiting for owners, at most (past it they are refused at once). */
const WAITING_MAX = 10_000;
/** A call forwarded more often than this (nodes disagreeing about an owner for a moment) is refused. */
const MAX_HOPS = 3;

const MOVED_TEXT = 'this conversation is moving between servers, please retry';

export interface ClusterHost {
  /** Applies one ledger entry to the replica and the local sockets (deterministic, see cluster/entry.ts). */
  apply(entry: Entry, seq: number): void;
  /** Nothing of the entry at `seq` applies here (it is void), but the replica has got past it. */
  applied(seq: number): void;
  /** Who is online here, and where a change of the whole cluster's presence goes. */
  presence: PresenceLocal;
  /** Ephemeral frames of another node for the sockets of these accounts here. */
  ephemeralIn(frames: Array<[string, string]>): void;
  /** A frame for a connection held here, from another node. */
  frameIn(conn: number, frame: string): void;
  /** A group call this node decides (its partition is served here). */
  decide(call: GroupCall): void;
  verify(call: VerifyCall): void;
  /** Partitions gained or lost: their resident actors go; resolves once the calls the shards had taken are decided. */
  evict(partitions: number[]): Promise<void>;
  /** This node serves `partition` now (true) or no longer (false): the chain watcher follows the verification actor. */
  leads(partition: number, on: boolean): void;
  /** A frame for any connection of the cluster. */
  sendTo(conn: number, frame: string): void;
  connections(): number;
}

interface Waiting { call: GroupCall; since: number }

export class ClusterRole {
  readonly nodeId: string;
  readonly firstConnId: number;
  readonly ledger: Ledger;
  readonly ownership: Ownership;
  readonly links: Links;
  readonly presence: PresenceSync;
  /** States this node wrote to the ledger and has not applied yet (a reload must not read older ones). */
  private readonly pendingStates = new Map<string, { state: unknown; n: number }>();
  private readonly waiting = new Map<number, Waiting[]>();
  private waitingCount = 0;
  private sweep: NodeJS.Timeout | undefined;
  private caughtUp = false;
  readonly counters = { forwarded: 0, refusedMoved: 0, framesForwarded: 0 };

  private constructor(
    readonly engine: Engine,
    readonly replica: Replica,
    private readonly applied: number,
    readonly positions: EnginePositions,
    private readonly settings: Settings,
    private readonly host: ClusterHost,
    private readonly log: Logger,
    n: number,
  ) {
    // The node's number: its connection ids lie above it (cluster/links.ts), unique among live nodes.
    this.nodeId = n.toString(36);
    this.firstConnId = connIdBase(n) + 1;
    this.ledger = new Ledger(engine, this.nodeId, {
      apply: (entry, seq, quiet) => this.apply(quiet ? silenced(entry) : entry, seq),
      voided: (entry, seq) => {
        if (entry.node === this.nodeId) this.refuse(entry.ops, 'the cluster\'s store did not answer in time, please retry');
        this.host.applied(seq);
      },
      fenced: (p, ops) => { this.ownership.fenced(p); this.refuse(ops, MOVED_TEXT); },
      failed: (ops, err) => { this.log.warn({ err, ops: ops.length }, 'ledger write failed: its requests are refused'); this.refuse(ops, 'the cluster\'s store is not reachable, please retry'); },
    }, log.child({ component: 'ledger' }));
    this.ownership = new Ownership(this.nodeId, settings.partitions, engine.nodes, engine.owners, this.ledger, {
      gained: (p) => { void this.host.evict([p]); this.host.leads(p, true); },
      lost: (p) => { this.host.leads(p, false); return this.host.evict([p]); },
      ownerKnown: (p) => this.release(p),
      nodeGone: (node) => this.presence.nodeGone(node),
      info: () => ({ host: settings.host, port: settings.port, statusPort: settings.statusPort, connections: host.connections() }),
    }, settings.clusterHeartbeatMs, log.child({ component: 'ownership' }));
    this.presence = new PresenceSync(engine, this.nodeId, host.presence, log.child({ component: 'presence' }));
    this.links = new Links(engine, this.nodeId, {
      calls: (calls) => { for (const c of calls) this.group(c); },
      verify: (calls) => { for (const c of calls) this.verify(c); },
      frame: (conn, frame) => this.host.frameIn(conn, frame),
      ephemeral: (frames) => this.host.ephemeralIn(frames),
      undelivered: (node, calls, verify) => {
        // The node is gone (or stuck): its calls wait for whoever takes its partitions over.
        this.ownership.unreachableNode(node);
        for (const c of calls) this.group(c);
        for (const v of verify) this.verify(v);
      },
    }, log.child({ component: 'links' }));
  }

  /** Connects to the engine and opens this node's replica (not applying yet: see `start`). */
  static async open(settings: Settings, host: ClusterHost, log: Logger): Promise<ClusterRole> {
    const engine = await Engine.open({ url: settings.cluster!, name: settings.clusterName, replicas: settings.clusterReplicas, nodeTtlMs: settings.clusterHeartbeatMs * HEARTBEATS_TO_EXPIRE, log: log.child({ component: 'engine' }) });
    let positions: EnginePositions | undefined;
    const { replica, applied } = await Replica.open({
      dir: join(settings.data, `cluster-${settings.clusterName}`),
      backend: settings.store,
      epoch: engine.epoch,
      positions: (local) => (positions = new EnginePositions(local.positions, engine.positions, log.child({ component: 'positions' }))),
    });
    return new ClusterRole(engine, replica, applied, positions!, settings, host, log, await ClusterRole.number(engine));
  }

  /**
   * A number no live node has: drawn at random and taken by creating its key in the nodes bucket
   * (create fails for a key that exists). The heartbeat keeps the key from then on.
   */
  private static async number(engine: Engine): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const n = randomInt(1, 2 ** 20);
      try {
        await engine.nodes.create(`n.${n.toString(36)}`, JSON.stringify({ id: n.toString(36), starting: true, at: Date.now() }));
        return n;
      } catch (err) {
        if (attempt >= 5) throw err;
      }
    }
  }

  /** The resume-token key, the same on every node. */
  async resumeKey(): Promise<Buffer> {
    return Buffer.from(await this.secret('resume-key', () => randomBytes(32).toString('hex')), 'hex');
  }

  /**
   * Settings every node must share (placement depends on them): recorded by the first node; a node
   * started with others does not join.
   */
  async checkShared(): Promise<void> {
    const mine = JSON.stringify({ partitions: this.settings.partitions });
    const theirs = await this.secret('shared-settings', () => mine);
    if (theirs !== mine) throw new Error(`this cluster runs with ${theirs}, this node with ${mine}: start it with the cluster's settings`);
  }

  /** The server key's seed (verification tokens), the same on every node: one issuer for the cluster. */
  serverKeySeed(): Promise<string> { return this.secret('server-key-seed', newServerKeySeed); }

  /** A secret of the cluster: made once, by whichever node asks first (create fails for the others). */
  private async secret(name: string, make: () => string): Promise<string> {
    await this.engine.meta.create(name, make()).catch(() => undefined);
    const e = await this.engine.meta.get(name);
    if (!e || e.operation !== 'PUT') throw new Error(`the cluster's ${name} cannot be read`);
    return e.string();
  }

  /**
   * Replays the ledger from where the replica stopped until it is current, then joins: heartbeat,
   * partitions, mailbox. Resolves when this node can serve.
   */
  async start(): Promise<void> {
    await this.checkShared();
    const target = await this.engine.lastSeq();
    const t0 = Date.now();
    await this.ledger.start(this.applied);
    await this.ledger.appliedThrough(target);
    await this.replica.flush();
    this.caughtUp = true;
    this.log.info({ from: this.applied, to: target, ms: Date.now() - t0, node: this.nodeId }, 'replica current');
    this.links.start();
    this.presence.start();
    await this.ownership.start();
    this.sweep = setInterval(() => this.expireWaiting(), 1000);
    this.sweep.unref();
  }

  /** Ready: connected to the engine and current; and when it owns partitions, serving them. */
  get ready(): boolean { return this.caughtUp && this.engine.health().connected; }

  // ---- applying ----

  private apply(entry: Entry, seq: number): void {
    if (entry.node === this.nodeId) {
      for (const op of entry.ops) if (op.t === 'state') this.statePublished(op.state.address);
    }
    this.host.apply(entry, seq);
  }

  private statePublished(address: string): void {
    const p = this.pendingStates.get(address);
    if (p && --p.n <= 0) this.pendingStates.delete(address);
  }

  /** A state this node wrote and has not applied yet (the replica has an older one). */
  pendingState(address: string): { state: unknown } | undefined { return this.pendingStates.get(address); }

  // ---- writing ----

  /** The node's own operations (not decided by a partition's actors). */
  submit(ops: Op[]): void { this.ledger.submit(ops); }

  /**
   * What the actors of one shard decided in one batch, in order: by partition onto each partition's
   * route. An answer goes with its partition's entry when that entry changes state (so it leaves
   * once the change is stored); otherwise at once.
   */
  actorOutput(items: Array<Post | StateOut | Reply>, now: number): void {
    const byPart = new Map<number, Array<Post | StateOut | Reply>>();
    for (const item of items) {
      const p = item.part ?? -1;
      let list = byPart.get(p);
      if (!list) { list = []; byPart.set(p, list); }
      list.push(item);
    }
    for (const [p, list] of byPart) {
      const changed = list.some((i) => i.t === 'state' || i.t === 'post');
      const ops: Op[] = [];
      for (const item of list) {
        if (item.t === 'reply') {
          if (changed) ops.push({ t: 'reply', conn: item.conn, frame: item.frame });
          else this.host.sendTo(item.conn, item.frame);
        } else if (item.t === 'post') {
          ops.push({ t: 'post', post: item, at: now });
        } else {
          const pending = this.pendingStates.get(item.address);
          if (pending) { pending.state = item.state; pending.n++; } else this.pendingStates.set(item.address, { state: item.state, n: 1 });
          ops.push({ t: 'state', state: item });
        }
      }
      if (ops.length === 0) continue;
      if (p < 0) this.ledger.submit(ops);
      else this.ledger.submitPartition(p, ops);
    }
  }

  /** Operations that were never stored: whoever waited for them hears so (45003, retry). */
  private refuse(ops: Op[], text: string): void {
    for (const op of ops) {
      switch (op.t) {
        case 'post': if (op.post.ackTo) this.host.sendTo(op.post.ackTo.conn, refusedAnswer(op.post.ackTo.frame, Code.UNAVAILABLE, text)); break;
        case 'reply': this.host.sendTo(op.conn, refusedAnswer(op.frame, Code.UNAVAILABLE, text)); break;
        case 'change': this.host.sendTo(op.conn, errorFrame(Code.UNAVAILABLE, text, op.request)); break;
        case 'state': this.statePublished(op.state.address); break;
        case 'append': case 'join': case 'trim': case 'claim': break;
      }
    }
    this.counters.refusedMoved += ops.length;
  }

  // ---- routing ----

  /** A group call: decided here if this node serves its partition, else sent to the node that does. */
  group(call: GroupCall & { hops?: number }, partition = partitionOf(`group:${call.id}`, this.settings.partitions)): void {
    const owner = this.ownership.ownerOf(partition);
    if (owner === this.nodeId) return this.host.decide(call);
    if (owner !== undefined && (call.hops ?? 0) < MAX_HOPS) {
      this.counters.forwarded++;
      return this.links.call(owner, { ...call, hops: (call.hops ?? 0) + 1 } as GroupCall);
    }
    if (this.waitingCount >= WAITING_MAX || (call.hops ?? 0) >= MAX_HOPS) return this.refuseCall(call);
    let list = this.waiting.get(partition);
    if (!list) { list = []; this.waiting.set(partition, list); }
    list.push({ call, since: Date.now() });
    this.waitingCount++;
  }

  /** A call for the verification actor: where its partition is served. */
  verify(call: VerifyCall, partition = partitionOf('verify:book', this.settings.partitions)): void {
    const owner = this.ownership.ownerOf(partition);
    if (owner === this.nodeId) return this.host.verify(call);
    if (owner !== undefined) return this.links.verify(owner, call);
    if (call.op === 'reg' || call.op === 'proof') this.host.sendTo(call.conn, errorFrame(Code.UNAVAILABLE, MOVED_TEXT, call.request));
  }

  /** The owner of `partition` is known: its waiting calls go. */
  private release(partition: number): void {
    const list = this.waiting.get(partition);
    if (!list || this.ownership.ownerOf(partition) === undefined) return;
    this.waiting.delete(partition);
    this.waitingCount -= list.length;
    for (const w of list) this.group(w.call, partition);
  }

  private expireWaiting(): void {
    const now = Date.now();
    for (const [p, list] of this.waiting) {
      const keep = list.filter((w) => now - w.since < WAIT_OWNER_MS);
      for (const w of list) if (now - w.since >= WAIT_OWNER_MS) this.refuseCall(w.call);
      this.waitingCount -= list.length - keep.length;
      if (keep.length === 0) this.waiting.delete(p); else this.waiting.set(p, keep);
    }
  }

  private refuseCall(call: GroupCall): void {
    this.counters.refusedMoved++;
    this.host.sendTo(call.origin.conn, errorFrame(Code.UNAVAILABLE, MOVED_TEXT, call.origin.request));
  }

  /** Whether `conn` is held by this node. */
  isLocal(conn: number): boolean { return conn < 2 ** 32 || nodeOfConn(conn) === this.nodeId; }

  /** A frame for a connection of another node. */
  forward(conn: number, frame: string): void {
    this.counters.framesForwarded++;
    this.links.frame(nodeOfConn(conn), conn, frame);
  }

  // ---- status ----

  status(): Record<string, unknown> {
    const nodes = this.ownership.liveNodes().map((n: NodeInfo) => ({ ...n, self: n.id === this.nodeId }));
    return {
      name: this.settings.clusterName,
      node: this.nodeId,
      epoch: this.engine.epoch,
      engine: this.engine.health(),
      ready: this.ready,
      serving: this.ownership.servingList(),
      settled: this.ownership.settled(),
      partitions: this.settings.partitions,
      nodes,
      ledger: this.ledger.stats(),
      ownership: this.ownership.counters,
      links: this.links.counters,
      positions: this.positions.counters,
      presence: this.presence.stats(),
      waitingCalls: this.waitingCount,
      ...this.counters,
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.sweep);
    await this.ownership.stop();
    await this.ledger.stop();
    await this.positions.settle().catch((err: unknown) => this.log.warn({ err }, 'positions not all written to the engine at stop'));
    this.links.stop();
    this.presence.stop();
    await this.engine.close();
  }
}
