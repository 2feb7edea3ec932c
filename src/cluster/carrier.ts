/**
 * The cluster carrier (`--cluster nats://…`): the node's output goes into the ledger on NATS
 * JetStream and is applied, on every node, as the ledger is replayed; a call goes to the node that
 * owns its actor's partition; a frame to the node that holds its socket. Its parts, one file each:
 * joining and shared secrets (join.ts), replay (replay.ts), routing and the owner-wait queue
 * (routing.ts), status (status.ts), and the engine's pieces they use (ledger, ownership, links,
 * presence-sync, positions).
 */
import type { Logger } from 'pino';
import type { GroupCall, VerifyCall } from '../actors/envelopes';
import { VERIFY_ADDRESS } from '../actors/address';
import { convPartition } from '../actors/address';
import type { Carrier, ChangeCall, Local } from '../carrier/port';
import { routeDecided, type Decided } from '../carrier/ops';
import type { Settings } from '../config';
import { partitionOf } from '../hash';
import { Code } from '../protocol/codes';
import { errorFrame } from '../protocol/frames';
import type { AccountPositions, Store } from '../store/ports';
import { Backfill } from './backfill';
import type { Engine } from './engine';
import { firstOffset, type Op } from './entry';
import { joinCluster, Secrets, type Joined } from './join';
import { Ledger } from './ledger';
import { connIdBase, Links, nodeOfConn } from './links';
import { Owned, type OwnedCall } from './owned';
import { Ownership, placeOf, startingInfo } from './ownership';
import type { EnginePositions } from './positions';
import { PresenceSync } from './presence-sync';
import { publishingStates } from './publishing-states';
import { ClusterReads } from './reads';
import type { Replica } from './replica';
import { Replay } from './replay';
import { Routing } from './routing';
import { clusterStatus } from './status';
import { SnapshotPolicy } from './snapshot-policy';
import type { Snapshots } from './snapshots';
import { dropPartition, StoredPartitions } from './stored-partitions';

/** How long a starting node lists the live nodes to find the partitions it will take (prefill). */
const PREFILL_LIST_MS = 3000;

const CUT_OFF_TEXT = 'this server is cut off from the cluster\'s store, please retry (or connect to another server)';

export class ClusterCarrier implements Carrier {
  readonly replica = true;
  /** Reads of conversations stored elsewhere go to their owners (reads.ts). */
  readonly reads: ClusterReads;
  readonly nodeId: string;
  readonly firstConnId: number;
  readonly store: Replica;
  readonly sharedStore: Store;
  readonly serverKeySeed: () => Promise<string>;
  private readonly engine: Engine;
  private readonly positions: EnginePositions;
  private readonly secrets: Secrets;
  private readonly ledger: Ledger;
  private readonly ownership: Ownership;
  private readonly links: Links;
  private readonly presence: PresenceSync;
  private readonly routing: Routing;
  private readonly replay: Replay;
  private readonly backfill: Backfill;
  private readonly stored: StoredPartitions;
  private readonly owned: Owned;
  private readonly snapshots: Snapshots;
  private readonly policy: SnapshotPolicy;
  private local: Local | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private caughtUp = false;
  /** Filling in the partitions to come, then joining (a node joining a cluster that holds data). */
  private joining: Promise<void> | undefined;
  private stopping = false;
  private framesForwarded = 0;

  /** Joins the cluster named in `settings` (engine, replica, node number); replay waits for `start`. */
  static async open(settings: Settings, log: Logger): Promise<ClusterCarrier> {
    return new ClusterCarrier(await joinCluster(settings, log), settings, log);
  }

  private constructor(private readonly joined: Joined, private readonly settings: Settings, private readonly log: Logger) {
    const { engine, replica, positions, n } = joined;
    this.engine = engine;
    this.store = replica;
    this.positions = positions;
    // The node's number: its connection ids lie above it (links.ts), unique among live nodes.
    this.nodeId = n.toString(36);
    this.firstConnId = connIdBase(n) + 1;
    this.secrets = new Secrets(engine, settings.partitions);
    this.serverKeySeed = () => this.secrets.serverKeySeed();
    this.backfill = new Backfill(engine, settings.partitions, replica, log.child({ component: 'backfill' }));
    this.snapshots = joined.snapshots;
    this.stored = new StoredPartitions({
      self: this.nodeId, partitions: settings.partitions, states: replica.states, openedAt: joined.applied,
      backfill: (p, after, through) => this.fillIn(p, after, through),
      drop: (p, stop) => dropPartition(this.store, p, settings.partitions, { stop }),
      dropAfterMs: settings.clusterDropAfterMs,
      log: log.child({ component: 'stored' }),
    });
    this.owned = new Owned({
      store: replica,
      local: () => this.here,
      submit: (p, ops) => { this.replay.pending.published(ops); this.ledger.submitPartition(p, ops); },
      sendTo: (conn, frame) => this.sendTo(conn, frame),
      afterPublished: (fn, lost) => this.ledger.after(fn, lost),
      appliedThrough: (seq) => this.ledger.appliedThrough(seq),
      caughtUp: () => this.engine.lastSeq().then((seq) => this.ledger.appliedThrough(seq)),
    });
    this.replay = new Replay({
      nodeId: this.nodeId, partitions: settings.partitions, replica, log,
      local: () => this.here,
      sendTo: (conn, frame) => this.sendTo(conn, frame),
      fenced: (p) => this.ownership.fenced(p),
      stored: this.stored,
      settled: (ops) => this.owned.settled(ops),
      doubtful: (ops) => this.owned.doubtful(ops),
      fatal: (err) => this.here.fatal(err),
    });
    this.policy = new SnapshotPolicy({
      snapshots: this.snapshots, store: replica, partitions: settings.partitions,
      serving: () => this.ownership.servingList(),
      storedOf: (p) => this.stored.storedOf(p),
      applied: () => this.ledger.applied,
      liveApplied: () => this.ownership.liveNodes().map((n) => n.applied ?? 0),
      log: log.child({ component: 'snapshots' }),
    }, { everyMs: settings.clusterSnapshotMs, minRecords: settings.clusterSnapshotRecords, sharedEntries: settings.clusterSnapshotEntries });
    this.ledger = new Ledger(engine, this.nodeId, this.replay.hooks(), log.child({ component: 'ledger' }));
    this.sharedStore = publishingStates(replica, (ops) => this.ledger.submit(ops));
    this.ownership = new Ownership(this.nodeId, settings.partitions, engine.nodes, engine.owners, this.ledger, {
      ready: (p) => this.stored.ready(p),
      gained: (p) => { void this.here.evict([p]); this.here.leads(p, true); },
      lost: (p) => { this.here.leads(p, false); return this.here.evict([p]); },
      ownerKnown: (p) => this.routing.release(p),
      nodeGone: (node) => this.presence.nodeGone(node),
      info: () => ({ host: settings.host, port: settings.port, statusPort: settings.statusPort, connections: this.here.connections(), applied: this.ledger.applied }),
    }, settings.clusterHeartbeatMs, log.child({ component: 'ownership' }));
    this.presence = new PresenceSync(engine, this.nodeId, {
      isOnline: (a) => this.here.presence.isOnline(a),
      accounts: () => this.here.presence.accounts(),
      changed: (a, online) => this.here.presence.changed(a, online),
    }, log.child({ component: 'presence' }));
    this.routing = new Routing({
      self: this.nodeId,
      partitions: settings.partitions,
      ownerOf: (p) => this.ownership.ownerOf(p),
      decide: (call) => this.here.decide(call),
      verify: (call) => this.verifyHere(call),
      forward: (node, call) => this.links.call(node, call),
      forwardVerify: (node, call) => this.links.verify(node, call),
      owned: (call, p) => this.ownedHere(call, p),
      forwardOwned: (node, call) => this.links.owned(node, call),
      sendTo: (conn, frame) => this.sendTo(conn, frame),
    });
    this.links = new Links(engine, this.nodeId, {
      calls: (calls) => { for (const c of calls) this.routing.group(c); },
      verify: (calls) => { for (const c of calls) this.routing.verify(c); },
      owned: (calls) => { for (const c of calls) this.routing.owned(c); },
      frame: (conn, frame) => this.here.send(conn, frame),
      ephemeral: (frames) => this.here.ephemeralIn(frames),
      undelivered: (node, calls, verify, owned) => {
        // The node is gone (or stuck): its calls wait for whoever takes its partitions over.
        this.ownership.unreachableNode(node);
        for (const c of calls) this.routing.group(c);
        for (const v of verify) this.routing.verify(v);
        for (const o of owned) this.routing.owned(o);
      },
    }, log.child({ component: 'links' }));
    this.reads = new ClusterReads({
      self: this.nodeId, partitions: settings.partitions,
      ownerOf: (p) => this.ownership.ownerOf(p),
      storesLocally: (p) => this.ownership.serves(p),
      local: () => this.here.reads,
      applied: () => this.ledger.applied,
      appliedThrough: (seq) => this.ledger.appliedThrough(seq),
      nc: engine.nc, names: engine.names, log: log.child({ component: 'reads' }),
    });
  }

  resumeKey(): Promise<Buffer> { return this.secrets.resumeKey(); }

  /**
   * A claimed partition's records from before its claim: from the ledger after this node's mark,
   * or, when the ledger no longer holds that far back (trimmed below its snapshots) or this node
   * never kept the partition, from the partition's snapshot first (its stale records dropped, so a
   * record deleted since cannot survive here) and the ledger after it.
   */
  private async fillIn(p: number, after: number, through: number): Promise<void> {
    const first = await this.engine.firstSeq();
    if (after === 0 || after + 1 < first) {
      // Only what came before the claim (`through`): the fill-in runs while the ledger goes on, and a
      // record of this partition applied after the claim (a notice into an account's own log) is kept.
      await dropPartition(this.store, p, this.settings.partitions, { upTo: firstOffset(through + 1) - 1 });
      const seq = await this.snapshots.loadPartition(p, this.store);
      if (seq === undefined && first > 1) throw new Error(`partition ${p}: the ledger starts at ${first} and the partition has no snapshot`);
      if (seq !== undefined && seq + 1 < first) throw new Error(`partition ${p}: its snapshot covers through ${seq}, the ledger starts at ${first}`);
      after = Math.max(after, seq ?? 0);
    }
    if (after < through) await this.backfill.fill(p, after, through);
  }

  /**
   * Replays the ledger from where the replica stopped until it is current, then joins: heartbeat,
   * partitions, mailbox. Resolves when this node can serve.
   */
  async start(local: Local): Promise<void> {
    this.local = local;
    await this.catchUp().catch((err: unknown) => { throw new Error(`cluster ${this.settings.clusterName}: ${(err as Error).message}`); });
    // From here on the node serves: mailbox, presence, heartbeat and partitions.
    this.links.start();
    this.reads.start();
    this.presence.start();
    this.sweep = setInterval(() => this.routing.expire(), 1000);
    this.sweep.unref();
    const mine = await this.partitionsToCome();
    const join = async (): Promise<void> => {
      if (this.stopping) return;
      await this.ownership.start();
      this.policy.start();
    };
    if (mine.length === 0) return join();
    // Joining with partitions to fill in: this node serves its sockets now (the others serve every
    // partition meanwhile) and joins the placement once they are filled in.
    // A partition that cannot be filled in now (a damaged snapshot, NATS gone) is filled in at its
    // claim again, or stays with the node serving it: joining goes on either way.
    this.joining = this.prefill(mine)
      .catch((err: unknown) => this.log.error({ err, partitions: mine }, 'partitions to come not filled in before joining; they are filled in at their claims'))
      .then(join)
      .catch((err: unknown) => this.here.fatal(new Error(`cluster ${this.settings.clusterName}: not joined: ${(err as Error).message}`)));
  }

  /**
   * The partitions that will place on this node once it joins, of which it holds less than the
   * ledger. None if the live nodes cannot be listed within PREFILL_LIST_MS: the partitions are then
   * filled in at their claims, as they would be anyway.
   */
  private async partitionsToCome(): Promise<number[]> {
    const nodes = new Set<string>([this.nodeId]);
    // The bucket's key listing ends only once it has caught up with the bucket, which every node's
    // heartbeat keeps writing: on a loaded machine that can take longer than a node may wait to listen.
    let late = false;
    let keys: { stop(): void } | undefined;
    const listed = (async (): Promise<void> => {
      const it = await this.engine.nodes.keys('n.*');
      keys = it;
      if (late) return it.stop();
      for await (const k of it) {
        if (late) return;
        const e = await this.engine.nodes.get(k).catch(() => null);
        if (e?.operation === 'PUT' && (e.json<{ starting?: boolean }>().starting !== true)) nodes.add(k.slice(2));
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), PREFILL_LIST_MS); });
    const outcome = await Promise.race([listed.then(() => 'listed' as const), deadline]).finally(() => clearTimeout(timer));
    if (outcome === 'late') {
      late = true;
      keys?.stop();
      listed.catch(() => undefined);
      this.log.warn({ ms: PREFILL_LIST_MS }, 'live nodes not listed in time: joining without filling in first');
      return [];
    }
    if (nodes.size === 1) return [];
    const all = Array.from({ length: this.settings.partitions }, (_, p) => p);
    return all.filter((p) => placeOf(p, [...nodes]) === this.nodeId && this.stored.behind(p, this.ledger.applied));
  }

  /** Fills in `partitions` before joining; the node's key stays alive (as starting) meanwhile. */
  private async prefill(partitions: number[]): Promise<void> {
    const t0 = Date.now();
    const key = `n.${this.nodeId}`;
    const alive = setInterval(() => void this.engine.nodes.put(key, startingInfo(this.nodeId)).catch(() => undefined), this.settings.clusterHeartbeatMs);
    try {
      const through = this.ledger.applied;
      await Promise.all(partitions.map((p) => this.stored.prefill(p, through)));
      this.log.info({ partitions, through, ms: Date.now() - t0 }, 'partitions to come filled in before joining');
    } finally {
      clearInterval(alive);
    }
  }

  private async catchUp(): Promise<void> {
    await this.secrets.checkShared();
    const target = await this.engine.lastSeq();
    const t0 = Date.now();
    await this.ledger.start(this.joined.applied);
    await this.ledger.appliedThrough(target);
    await this.store.flush();
    this.caughtUp = true;
    this.log.info({ from: this.joined.applied, to: target, ms: Date.now() - t0, node: this.nodeId }, 'replica current');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweep);
    this.policy.stop();
    await this.ownership.stop();
    // Its partitions are handed on: other nodes read them from their new owners.
    this.reads.stop();
    await this.ledger.stop();
    await this.positions.settle().catch((err: unknown) => this.log.warn({ err }, 'positions not all written to the engine at stop'));
    this.links.stop();
    this.presence.stop();
    await this.engine.close();
  }

  /** Ready: connected to the engine and current. */
  get ready(): boolean { return this.caughtUp && this.engine.health().connected; }

  cutOff(): string | undefined { return this.engine.health().connected ? undefined : CUT_OFF_TEXT; }

  // ---- routes ----

  group(call: GroupCall): void { this.routing.group(call); }
  verify(call: VerifyCall): void { this.routing.verify(call); }
  post(op: Extract<Op, { t: 'post' }>): void { this.routing.owned({ t: 'post', op }); }
  /** The node deciding it must have applied what this node had: the original named may be that recent. */
  change(call: ChangeCall): void { this.routing.owned({ t: 'change', call, after: this.ledger.applied }); }

  /** A direct message or an edit for a partition this node serves (owned.ts). */
  private ownedHere(call: OwnedCall, partition: number): void {
    if (call.t === 'post') this.owned.post(call.op, partition);
    else this.owned.change(call.call, call.after, partition);
  }

  /** A `reg` forwarded from a node that does not watch the chain gets this (watching) node's decimals. */
  private verifyHere(call: VerifyCall): void {
    if (call.op === 'reg' && !Number.isFinite(call.decimals)) {
      const decimals = this.here.decimals();
      if (decimals === undefined) return this.sendTo(call.conn, errorFrame(Code.UNAVAILABLE, 'the chain node is not reachable yet, try again later', call.request));
      call = { ...call, decimals };
    }
    this.here.verify(call);
  }

  sendTo(conn: number, frame: string): void {
    // Connection ids below 2^32 are never a node's (see links.ts): they are this node's.
    if (conn < 2 ** 32 || nodeOfConn(conn) === this.nodeId) return this.here.send(conn, frame);
    this.framesForwarded++;
    this.links.frame(nodeOfConn(conn), conn, frame);
  }

  ephemeral(account: string, frame: string): void { this.links.ephemeral(account, frame); }
  isOnline(account: string): boolean { return this.presence.isOnline(account); }
  localChanged(account: string, online: boolean): void { this.presence.localChanged(account, online); }

  // ---- output ----

  /**
   * A shard's batch, by partition onto each partition's route: an answer goes with its partition's
   * entry when that entry changes something (it leaves once the change is stored), otherwise at once.
   */
  decided(items: readonly Decided[], now: number): void {
    const { routes, immediate } = routeDecided(items, now);
    for (const r of immediate) this.sendTo(r.conn, r.frame);
    for (const route of routes) {
      const { part } = route;
      // A group's resent message (same `mid`) is found here, where its log is, before the ledger (owned.ts).
      const ops = part < 0 ? route.ops : this.owned.screened(route.ops, part);
      if (ops.length === 0) continue;
      this.replay.pending.published(ops);
      if (part < 0) this.ledger.submit(ops);
      else this.ledger.submitPartition(part, ops);
    }
  }

  submit(ops: Op[]): void { this.ledger.submit(ops); }

  /** Stored in JetStream, then applied here, then durable in the replica. */
  afterDurable(fn: () => void, lost?: () => void): void {
    this.ledger.after(() => this.here.afterDurable(fn, lost), lost);
  }

  stateOf(address: string): unknown {
    const pending = this.replay.pending.get(address);
    return pending ? pending.state : this.store.states.get(address);
  }

  /**
   * The age sweep runs on each node's clock over the records it keeps; a trim goes through the
   * ledger, so a node that takes the partition over later trims alike (backfill.ts). The node
   * serving the conversation's partition proposes it.
   */
  readonly ageTrim = (conv: string, upTo: number): void => {
    if (this.ownership.serves(convPartition(conv, this.settings.partitions))) this.submit([{ t: 'trim', conv, upTo }]);
  };

  positionsOf(account: string): Promise<AccountPositions | undefined> { return this.positions.fetch(account); }

  /** The verification actor's partition (the chain watcher follows it). */
  get verifierPartition(): number { return partitionOf(VERIFY_ADDRESS, this.settings.partitions); }

  status(): Record<string, unknown> {
    return clusterStatus({
      name: this.settings.clusterName, nodeId: this.nodeId, partitions: this.settings.partitions, ready: this.ready,
      engine: this.engine, ownership: this.ownership, ledger: this.ledger, links: this.links, positions: this.positions, presence: this.presence,
      waitingCalls: this.routing.waitingCalls,
      keeps: this.stored.list(), dropped: this.stored.counters, backfill: this.backfill.counters, snapshots: this.policy.counters, owned: { ...this.owned.counters, inFlight: this.owned.pending },
      counters: { forwarded: this.routing.counters.forwarded, refusedMoved: this.routing.counters.refusedMoved + this.replay.refused, framesForwarded: this.framesForwarded },
    });
  }

  private get here(): Local {
    if (!this.local) throw new Error('cluster carrier not started');
    return this.local;
  }
}
