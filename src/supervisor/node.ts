/**
 * The node owns the whole service: it starts the shards and the endpoint, routes every request to
 * the actor that decides it, carries actor output back to sockets, and restarts a shard that dies.
 * How a group message travels: socket → connection actor (main thread, validates) → mailbox of the
 * group's shard (one postMessage per batch) → the group actor checks membership and serializes the
 * message once → back to main as a fanout → each member's inbox actor (main thread) gives it that
 * member's sequence number and journals it (keeps it if the member is away) → once durable, every
 * socket of every member. A direct message skips the shard: connection → inbox → sockets.
 */
import type { Settings } from '../config';
import { logger } from '../log';
import { Code } from '../protocol/codes';
import { directTemplate, errorFrame, noticeFrame, renderFrame, type Request } from '../protocol/frames';
import type { Connection, Router } from '../actors/connection';
import type { Fanout, FromShard, ShardStats, ToShard } from '../actors/envelopes';
import { InboxHost, type DeliverOptions, type Push } from '../actors/inbox-host';
import { initDataDir } from '../store/layout';
import { importLegacy, type ImportTarget } from './legacy-import';
import type { ShardConfig } from '../actors/persistence';
import { Endpoint } from '../net/endpoint';
import { SignatureChecker } from '../net/signatures';
import { Registry } from './registry';
import { ShardHost } from './shard-host';
import { RestartBudget } from './restart-budget';
import { Verification } from './verification';
import { VERIFY_ADDRESS } from '../actors/verifier';
import { legacyProof } from './legacy-import';

/** Group requests that only read state or fan out: deciding them twice is harmless. */
const REPLAYABLE_GROUP_ACTS = new Set(['detail', 'chat', 'notice']);

export interface Counters {
  framesIn: number;
  framesOut: number;
  restarts: number;
  bounced: number;
}

export class Node implements Router {
  readonly registry: Registry;
  readonly shards: ShardHost[] = [];
  readonly counters: Counters = { framesIn: 0, framesOut: 0, restarts: 0, bounced: 0 };
  readonly startedAt = Date.now();
  private readonly signatures: SignatureChecker;
  private readonly budget: RestartBudget;
  private endpoint: Endpoint | undefined;
  private inboxes: InboxHost | undefined;
  private readonly log = logger({ part: 'node' });
  readonly verification: Verification;
  onFatal: (err: unknown) => void = () => {};
  ready = false;

  constructor(readonly settings: Settings) {
    this.registry = new Registry(settings.partitions, settings.workers);
    this.signatures = new SignatureChecker(1);
    this.budget = new RestartBudget(settings.restartMax, settings.restartWindowMs);
    this.verification = new Verification(
      { endpoint: settings.chainEndpoint, target: settings.verifyTarget, dataDir: settings.data, tokenTtlMs: settings.tokenTtlMs },
      { toVerifier: (item) => this.toVerifier(item), sendTo: (conn, frame) => this.sendTo(conn, frame) },
    );
  }

  private toVerifier(item: ToShard): void {
    this.shards[this.registry.workerOf(VERIFY_ADDRESS)]!.post(item);
  }

  get auth(): 'signed' | 'open' { return this.settings.auth; }
  get maxFrame(): number { return this.settings.maxFrame; }
  get rateLimit(): number { return this.settings.rateLimit; }
  received(): void { this.counters.framesIn++; }
  sent(): void { this.counters.framesOut++; }

  async start(): Promise<{ port: number }> {
    const s = this.settings;
    // Made here, once, before the shards open their partitions in it; refuses a mismatched layout.
    initDataDir(s.data, s.partitions);
    for (let index = 0; index < s.workers; index++) {
      const cfg: ShardConfig = {
        index,
        workers: s.workers,
        partitions: s.partitions,
        partitionsOwned: Array.from({ length: s.partitions }, (_, p) => p).filter((p) => p % s.workers === index),
        dataDir: s.data,
        fsync: s.fsync,
        checkpointEvery: s.checkpointEvery,
        checkpointMs: s.checkpointMs,
        limits: { maxGroupSize: s.maxGroupSize, inboxMax: s.inboxMax, inboxMaxAgeMs: s.inboxMaxAgeMs },
        testFaults: s.testFaults,
        logLevel: s.logLevel,
        verify: { target: s.verifyTarget, ttlMs: s.verifyTtlMs },
        groupsResident: s.groupsResident,
        groupIdleMs: s.groupIdleMs,
      };
      this.shards.push(new ShardHost(cfg, {
        output: (i, items) => this.onShardOutput(i, items),
        died: (i, inFlight, err) => this.onShardDied(i, inFlight, err),
      }));
    }
    this.inboxes = await InboxHost.open(
      { dataDir: s.data, partitions: s.partitions, fsync: s.fsync, checkpointEvery: s.checkpointEvery, checkpointMs: s.checkpointMs },
      { inboxMax: s.inboxMax, inboxMaxAgeMs: s.inboxMaxAgeMs },
      { push: (p) => this.push(p), reply: (conn, frame) => this.sendTo(conn, frame) },
    );
    await Promise.all(this.shards.map((h) => h.start()));
    if (s.importLegacy) await importLegacy(s.importLegacy, s.data, this.importTarget());
    await this.verification.start();
    this.endpoint = new Endpoint(
      { host: s.host, port: s.port, maxFrame: s.maxFrame, heartbeatMs: s.heartbeatMs, tlsCert: s.tlsCert, tlsKey: s.tlsKey },
      this,
      { opened: (c) => this.registry.add(c), closed: (c) => this.registry.remove(c) },
    );
    const addr = await this.endpoint.listen();
    this.ready = true;
    this.log.info({ port: addr.port, host: s.host, workers: s.workers, auth: s.auth, data: s.data }, 'IMGC listening');
    return { port: addr.port };
  }

  async stop(): Promise<void> {
    this.ready = false;
    await this.verification.stop();
    await this.endpoint?.close();
    await Promise.all(this.shards.map((h) => h.stop(this.settings.shutdownMs)));
    // After the shards: their last output (fanouts) still lands in inboxes before these close.
    await this.inboxes?.close();
    await this.signatures.close();
  }

  // ---- Router: what connection actors ask for ----

  verifySignature(message: string, signature: string, address: string): Promise<boolean> {
    return this.signatures.verify(message, signature, address);
  }

  signIn(peer: Connection, account: string): void { this.registry.signIn(peer, account); }
  signOut(peer: Connection): void { this.registry.signOut(peer); }

  sync(peer: Connection): void {
    this.inbox.drain(peer.account!, peer.id, Date.now());
  }

  direct(peer: Connection, r: Request): void {
    const from = peer.account!;
    const to = r.to as string;
    const tpl = directTemplate(from, JSON.stringify(r.msg));
    const ackTo = r.mid !== undefined || r.callback !== undefined
      ? { conn: peer.id, frame: noticeFrame('chat', r.act, { to, mid: r.mid ?? null }, r.callback) }
      : undefined;
    const key = typeof r.mid === 'string' ? `${from}/${r.mid}` : undefined;
    this.fanout({ t: 'fanout', accounts: [to], tpl, ackTo, key });
  }

  group(peer: Connection, id: string, r: Request): void {
    const call = { t: 'group' as const, id, origin: { conn: peer.id, account: peer.account!, request: r }, now: Date.now() };
    this.shards[this.registry.workerOfGroup(id)]!.post(call);
  }

  ack(account: string, upTo: number): void {
    this.inbox.ack(account, upTo);
  }

  vertify(peer: Connection, r: Request): void {
    this.verification.handle(peer, r);
  }

  /** The inbox host; there from start() on. */
  private get inbox(): InboxHost {
    if (!this.inboxes) throw new Error('node not started');
    return this.inboxes;
  }

  // ---- actor output back to sockets ----

  private onShardOutput(index: number, items: FromShard[]): void {
    for (const item of items) {
      switch (item.t) {
        case 'reply': this.sendTo(item.conn, item.frame); break;
        case 'fanout': this.fanout(item); break;
        case 'cursor': this.verification.onCursor(item); break;
        case 'proof': this.verification.onProof(item); break;
        case 'stats': this.collectStats(index, item); break;
      }
    }
  }

  private sendTo(conn: number, frame: string): void {
    this.registry.peer(conn)?.send(frame);
  }

  /** Hands a message for several accounts to their inbox actors, with who is online right now. */
  private fanout(f: Fanout): void {
    const online = f.accounts.map((a) => this.registry.isOnline(a));
    const opts: DeliverOptions = {};
    if (f.except !== undefined) opts.except = f.except;
    if (f.key !== undefined) opts.key = f.key;
    if (f.ackTo !== undefined) opts.ackTo = f.ackTo;
    this.inbox.deliver(f.accounts, online, f.tpl, Date.now(), opts);
  }

  /** Writes sequenced frames to every socket of each account; what finds no socket goes back to its inbox. */
  private push(p: Push): void {
    for (let i = 0; i < p.accounts.length; i++) {
      const account = p.accounts[i]!;
      const seq = p.seqs[i]!;
      const peers = this.registry.peersOf(account);
      let written = 0;
      if (peers) {
        const frame = renderFrame(p.tpl, account, seq);
        for (const peer of peers) {
          if (peer.id === p.except) { written++; continue; }
          if (peer.send(frame)) written++;
        }
      }
      if (written === 0) {
        this.counters.bounced++;
        this.inbox.bounce(account, [seq], p.tpl, Date.now());
      }
    }
  }

  // ---- supervision ----

  private onShardDied(index: number, inFlight: ToShard[], err: unknown): void {
    this.counters.restarts++;
    this.log.error({ shard: index, err, inFlight: inFlight.length }, 'shard died');
    if (!this.budget.allow()) {
      this.log.fatal({ shard: index, restartMax: this.settings.restartMax, windowMs: this.settings.restartWindowMs }, 'restart budget exhausted, shutting down');
      this.onFatal(err);
      return;
    }
    const host = this.shards[index]!;
    // What changes no group state (detail, chat, notice) is simply decided again by the new shard;
    // a change may already be journaled, so its requester is told to check and retry instead.
    for (const item of inFlight) {
      // A control message (a stats query, the fault switch itself) is not worth a second try.
      if (item.t === 'control') continue;
      if (item.t === 'group' && !REPLAYABLE_GROUP_ACTS.has(item.origin.request.act)) {
        this.registry.peer(item.origin.conn)?.send(errorFrame(Code.UNAVAILABLE, 'part of the server restarted, please retry', item.origin.request));
      } else {
        host.post(item);
      }
    }
    host.start().then(
      () => this.log.warn({ shard: index, restarts: this.counters.restarts }, 'shard restarted'),
      (e: unknown) => { this.log.fatal({ err: e, shard: index }, 'shard failed to restart'); this.onFatal(e); },
    );
  }

  private importTarget(): ImportTarget {
    return {
      importGroup: (group) => this.shards[this.registry.workerOfGroup(group.id)]!.post({ t: 'import', group }),
      importHistory: (account, frames) => this.inbox.importHistory(account, frames, Date.now()),
      importVerification: (account, proof) => this.toVerifier({ t: 'verify', op: 'import', proof: legacyProof(account, proof) }),
      // Batches are answered in order and only once durable: a round of stats comes back after the imports.
      settle: () => Promise.all([this.shardStats(), this.inbox.settle()]).then(() => undefined),
    };
  }

  /** Per shard: who waits for its next stats answer (one control message asks for all of them). */
  private statsWaiting: Array<Array<(s: ShardStats) => void>> = [];

  /** Asks one shard for its figures; resolves when that shard answers (never, while it is stuck). */
  shardStatsOf(index: number): Promise<ShardStats> {
    return new Promise((resolve) => {
      const waiting = (this.statsWaiting[index] ??= []);
      waiting.push(resolve);
      if (waiting.length === 1) this.shards[index]!.post({ t: 'control', op: 'stats' });
    });
  }

  /** Asks every shard for its figures, in shard order. */
  shardStats(): Promise<ShardStats[]> {
    return Promise.all(this.shards.map((h) => this.shardStatsOf(h.index)));
  }

  private collectStats(index: number, s: ShardStats): void {
    const waiting = this.statsWaiting[index] ?? [];
    this.statsWaiting[index] = [];
    for (const w of waiting) w(s);
  }

  /** Test-only fault switch: crashes one shard in the middle of its work. */
  crashShard(index: number): void {
    this.shards[index]?.post({ t: 'control', op: 'crash' });
  }

  get connections(): number { return this.registry.connectionCount; }

  /** For /status: the inbox actors and their journal. */
  inboxState(): { inboxes: number; stored: number; dropped: number; persistence: unknown } {
    return this.inboxes?.stats() ?? { inboxes: 0, stored: 0, dropped: 0, persistence: null };
  }

  /** For /status: the chain watcher's state when verification runs. */
  chainState(): ReturnType<Verification['chainState']> { return this.verification.chainState(); }

  /** For /status: verification settings and the token issuer's public address. */
  verificationState(): Record<string, unknown> { return this.verification.state(); }
}
