/**
 * Who is in the cluster and who owns which partition. Each node keeps a heartbeat key in the nodes
 * bucket (its TTL drops a node that stopped); every partition has one owner, placed by rendezvous
 * hashing over the live nodes, so a node joining or leaving moves only the partitions it gains or
 * loses. The owners bucket records the owner (compare-and-set on its revision, so two nodes never
 * both take a partition from a dead one); the ledger's claim entry is what fences the previous
 * owner's writes.
 *
 * Taking over: a partition whose recorded owner is gone (or unrecorded) is claimed by the node it
 * now places on. Handing over: an owner that is no longer where a partition places (a node joined)
 * finishes what it has in flight, stops, and records the new owner, which then claims it.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import { stableHash32 } from '../hash';
import type { Ledger } from './ledger';

export interface NodeInfo {
  id: string;
  /** Where its clients connect and its status answers. */
  host: string;
  port: number;
  statusPort: number;
  connections: number;
  /** The ledger sequence it applied through (the ledger is not trimmed past a live node). */
  applied?: number;
  /** Partitions it serves now. */
  serving: number[];
  startedAt: number;
  at: number;
}

interface OwnerRecord { node: string | null; term: number }

/** A node's key while it starts (has its number, replays, fills in): not in the placement yet (`nodeSeen`). */
export function startingInfo(id: string): string { return JSON.stringify({ id, starting: true, at: Date.now() }); }

export interface OwnershipHooks {
  /** Resolves once this node has what it needs to serve `partition` after its claim (its records filled in). */
  ready(partition: number): Promise<void>;
  /** This node serves `partition` from now on (its claim is applied): resident actors are reloaded. */
  gained(partition: number): void;
  /** This node no longer serves `partition`; resolves once the calls its actors had taken are decided. */
  lost(partition: number): Promise<void> | void;
  /** The owner of `partition` is known (or changed): calls waiting for it can go. */
  ownerKnown(partition: number): void;
  /** `node` left the cluster (its heartbeat expired, or it did not take calls). */
  nodeGone(node: string): void;
  /** This node's figures for its heartbeat. */
  info(): Omit<NodeInfo, 'id' | 'serving' | 'at' | 'startedAt'>;
}

const key = (p: number): string => `p.${p}`;
/** A node is gone after this many heartbeats without one (the nodes bucket's TTL). */
export const HEARTBEATS_TO_EXPIRE = 4;
const decode = <T>(v: Uint8Array): T => JSON.parse(Buffer.from(v).toString('utf8')) as T;
const encode = (v: unknown): string => JSON.stringify(v);

/** The node `partition` places on among `nodes` (rendezvous: highest hash of partition and node wins). */
export function placeOf(partition: number, nodes: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const n of nodes) {
    const score = stableHash32(`${partition}/${n}`);
    if (score > bestScore || (score === bestScore && n < best!)) { best = n; bestScore = score; }
  }
  return best;
}

export class Ownership {
  private readonly live = new Map<string, NodeInfo>();
  /** Heartbeats seen in a row per node: a node placed on must have been seen twice (no thrash at start). */
  private readonly seen = new Map<string, number>();
  private readonly owners = new Map<number, { rec: OwnerRecord; revision: number }>();
  /** Nodes that did not take calls sent to them, and when (cleared by a heartbeat written after that). */
  private readonly unreachable = new Map<string, number>();
  /** When each node's heartbeat last arrived (this node's clock). */
  private readonly heard = new Map<string, number>();
  private readonly watches: Array<{ stop(): void }> = [];
  private readonly serving = new Set<number>();
  /** Partitions with a claim or hand-over under way. */
  private readonly busy = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private readonly startedAt = Date.now();
  readonly counters = { claims: 0, takeovers: 0, handovers: 0, lost: 0 };

  constructor(
    readonly nodeId: string,
    private readonly partitions: number,
    private readonly nodes: KV,
    private readonly ownersKv: KV,
    private readonly ledger: Ledger,
    private readonly hooks: OwnershipHooks,
    private readonly heartbeatMs: number,
    private readonly log: Logger,
  ) {}

  /**
   * Registers this node (its id must be new in the cluster), watches the nodes and owners buckets
   * (every heartbeat and every change of owner arrives as it is written: nothing is polled), and
   * starts the heartbeat.
   */
  async start(): Promise<void> {
    // The key was created when the node took its number (ClusterRole.number); from now on it beats.
    await this.nodes.put(`n.${this.nodeId}`, encode(this.info()));
    const nodes = await this.nodes.watch({ key: 'n.*' });
    const owners = await this.ownersKv.watch({ key: 'p.*' });
    this.watches.push(nodes, owners);
    void this.follow(nodes, (e) => this.nodeSeen(e));
    void this.follow(owners, (e) => this.ownerSeen(e));
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.heartbeatMs);
    this.timer.unref();
  }

  private async follow(w: AsyncIterable<KvWatchEntry>, fn: (e: KvWatchEntry) => void): Promise<void> {
    try {
      for await (const e of w) fn(e);
    } catch (err) {
      this.log.error({ err }, 'cluster watch ended');
    }
  }

  /** A heartbeat (or a node's goodbye) as written. */
  private nodeSeen(e: KvWatchEntry): void {
    const id = e.key.slice(2);
    if (e.operation !== 'PUT') return this.gone(id);
    const info = decode<NodeInfo & { starting?: boolean }>(e.value);
    // A node that has taken its number but is still replaying the ledger is not in the cluster yet.
    if (info.starting === true) return;
    this.heard.set(id, Date.now());
    // A node reported unreachable is back only with a heartbeat written after that.
    if (this.unreachable.has(id)) {
      if (info.at <= (this.unreachable.get(id) ?? 0)) return;
      this.unreachable.delete(id);
    }
    this.live.set(id, info);
    this.seen.set(id, (this.seen.get(id) ?? 0) + 1);
  }

  private gone(id: string): void {
    this.heard.delete(id);
    if (!this.live.delete(id)) return;
    this.seen.delete(id);
    this.hooks.nodeGone(id);
  }

  /** A change of a partition's recorded owner. */
  private ownerSeen(e: KvWatchEntry): void {
    const p = Number(e.key.slice(2));
    if (!Number.isInteger(p) || p < 0 || p >= this.partitions) return;
    const before = this.owners.get(p);
    if (e.operation !== 'PUT') this.owners.delete(p);
    else if (!before || e.revision > before.revision) this.owners.set(p, { rec: decode<OwnerRecord>(e.value), revision: e.revision });
    const now = this.owners.get(p)?.rec.node;
    if (now !== before?.rec.node) this.hooks.ownerKnown(p);
    // Recorded elsewhere while this node still serves it: someone took it (this node was thought
    // dead). Stop now; the ledger would refuse its next entry anyway.
    if (this.serving.has(p) && now !== this.nodeId && !this.busy.has(p)) this.drop(p, 'the owners bucket names another node');
  }

  /** The node that serves `partition`, as far as this node knows (undefined: nobody yet). */
  ownerOf(partition: number): string | undefined {
    if (this.serving.has(partition)) return this.nodeId;
    const o = this.owners.get(partition)?.rec.node ?? undefined;
    if (o === this.nodeId) return undefined; // recorded but not claimed yet: wait
    return o !== undefined && this.live.has(o) && !this.unreachable.has(o) ? o : undefined;
  }

  /**
   * `node` did not take calls sent to it: until its partitions change hands (or it beats again),
   * nothing is routed to it; calls wait for the new owner instead.
   */
  unreachableNode(node: string): void {
    if (node === this.nodeId) return;
    this.unreachable.set(node, Date.now());
    this.gone(node);
  }

  serves(partition: number): boolean { return this.serving.has(partition); }

  /** Every partition is recorded with the node it places on, and no claim or hand-over is under way (as this node sees it). */
  settled(): boolean {
    if (this.busy.size > 0) return false;
    const nodes = [...this.live.keys()];
    for (let p = 0; p < this.partitions; p++) {
      const want = placeOf(p, nodes);
      if (want === undefined || this.owners.get(p)?.rec.node !== want) return false;
      if ((want === this.nodeId) !== this.serving.has(p)) return false;
    }
    return true;
  }

  servingList(): number[] { return [...this.serving].sort((a, b) => a - b); }

  liveNodes(): NodeInfo[] { return [...this.live.values()].sort((a, b) => (a.id < b.id ? -1 : 1)); }

  private info(): NodeInfo {
    return { id: this.nodeId, ...this.hooks.info(), serving: this.servingList(), startedAt: this.startedAt, at: Date.now() };
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.nodes.put(`n.${this.nodeId}`, encode(this.info()));
      this.heard.set(this.nodeId, Date.now());
      // A node not heard of for the bucket's TTL is gone (its key expired; expiry is not announced).
      const ttl = this.heartbeatMs * HEARTBEATS_TO_EXPIRE;
      for (const [id, at] of this.heard) if (id !== this.nodeId && Date.now() - at > ttl) this.gone(id);
      this.place();
    } catch (err) {
      this.log.debug({ err }, 'cluster heartbeat failed');
    } finally {
      this.ticking = false;
    }
  }

  /** Claims what places here and is free; hands over what places elsewhere now. */
  private place(): void {
    const stable = [...this.live.keys()].filter((id) => id === this.nodeId || (this.seen.get(id) ?? 0) >= 2);
    for (let p = 0; p < this.partitions; p++) {
      if (this.busy.has(p)) continue;
      const want = placeOf(p, stable);
      const o = this.owners.get(p);
      const owner = o?.rec.node ?? null;
      const ownerLive = owner !== null && this.live.has(owner);
      // Recorded here (handed over to this node, even where this node would now place it elsewhere:
      // it claims and then hands over again, so a partition is never left with no one serving it),
      // or placed here with its recorded owner gone.
      if (!this.serving.has(p) && (owner === this.nodeId || (want === this.nodeId && !ownerLive))) {
        void this.claim(p, o, owner !== null && owner !== this.nodeId);
      } else if (this.serving.has(p) && want !== undefined && want !== this.nodeId) {
        void this.handOver(p, want);
      }
    }
  }

  private async claim(p: number, o: { rec: OwnerRecord; revision: number } | undefined, takeover: boolean): Promise<void> {
    this.busy.add(p);
    try {
      const rec: OwnerRecord = { node: this.nodeId, term: (o?.rec.term ?? 0) + 1 };
      if (o?.rec.node !== this.nodeId) {
        // Compare-and-set: of two nodes that both think they should take it, one wins.
        const revision = o ? await this.ownersKv.update(key(p), encode(rec), o.revision) : await this.ownersKv.create(key(p), encode(rec));
        this.owners.set(p, { rec, revision });
      }
      const seq = await this.ledger.claim(p);
      await this.hooks.ready(p);
      this.serving.add(p);
      this.counters.claims++;
      if (takeover) this.counters.takeovers++;
      this.log.info({ partition: p, seq, takeover, previous: o?.rec.node ?? null }, 'partition claimed');
      this.hooks.gained(p);
      this.hooks.ownerKnown(p);
    } catch (err) {
      this.log.debug({ err, partition: p }, 'partition claim lost a race or failed; next heartbeat looks again');
    } finally {
      this.busy.delete(p);
    }
  }

  private async handOver(p: number, to: string): Promise<void> {
    this.busy.add(p);
    try {
      // No new calls are decided here from now on; what is in flight is stored first.
      this.serving.delete(p);
      await this.hooks.lost(p);
      await this.ledger.drained(p);
      this.ledger.release(p);
      const o = this.owners.get(p);
      const rec: OwnerRecord = { node: to, term: (o?.rec.term ?? 0) + 1 };
      const revision = o ? await this.ownersKv.update(key(p), encode(rec), o.revision) : await this.ownersKv.create(key(p), encode(rec));
      this.owners.set(p, { rec, revision });
      this.counters.handovers++;
      this.log.info({ partition: p, to }, 'partition handed over');
      this.hooks.ownerKnown(p);
    } catch (err) {
      this.log.warn({ err, partition: p }, 'partition hand-over failed; the new owner takes it over when it sees this node gone');
    } finally {
      this.busy.delete(p);
    }
  }

  /** The ledger refused this node's entry for `p`: another node claimed it. */
  fenced(p: number): void { this.drop(p, 'fenced by the ledger'); }

  private drop(p: number, why: string): void {
    if (!this.serving.delete(p)) return;
    this.counters.lost++;
    this.ledger.release(p);
    this.log.warn({ partition: p, why }, 'partition lost');
    void this.hooks.lost(p);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const w of this.watches) w.stop();
    await this.nodes.delete(`n.${this.nodeId}`).catch(() => undefined);
  }
}
