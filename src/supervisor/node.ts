/**
 * The node owns the whole service: it starts the shards and the endpoint, routes every request to
 * the actor that decides it, carries actor output back to sockets, and restarts a shard that dies.
 * How a group message travels: socket → connection actor (main thread, validates) → mailbox of the
 * group's shard → group actor decides and serializes the message once → back to main as a fanout
 * → mailboxes of the members' inbox shards → each inbox gives its sequence number (and keeps it if
 * the member is away) → back to main as a push → every socket of every member.
 */
import type { Settings } from '../config';
import { logger } from '../log';
import { Code } from '../protocol/codes';
import { directTemplate, errorFrame, noticeFrame, renderFrame, type Request } from '../protocol/frames';
import type { Connection, Router } from '../actors/connection';
import type { Deliver, Fanout, FromShard, Push, ShardStats, ToShard } from '../actors/envelopes';
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
  private readonly log = logger({ part: 'node' });
  private readonly pendingAcks = new Map<number, { conn: number; frame: string; remaining: number }>();
  private nextAckId = 1;
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
    await this.signatures.close();
  }

  // ---- Router: what connection actors ask for ----

  verifySignature(message: string, signature: string, address: string): Promise<boolean> {
    return this.signatures.verify(message, signature, address);
  }

  signIn(peer: Connection, account: string): void { this.registry.signIn(peer, account); }
  signOut(peer: Connection): void { this.registry.signOut(peer); }

  sync(peer: Connection): void {
    const account = peer.account!;
    this.toInboxShard(account, { t: 'drain', account, conn: peer.id, now: Date.now() });
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
    this.toInboxShard(account, { t: 'ack', account, upTo });
  }

  vertify(peer: Connection, r: Request): void {
    this.verification.handle(peer, r);
  }

  private toInboxShard(account: string, item: ToShard): void {
    this.shards[this.registry.workerOfInbox(account)]!.post(item);
  }

  // ---- actor output back to sockets ----

  private onShardOutput(index: number, items: FromShard[]): void {
    for (const item of items) {
      switch (item.t) {
        case 'reply': this.sendTo(item.conn, item.frame); break;
        case 'backlog': for (const f of item.frames) this.sendTo(item.conn, f); break;
        case 'fanout': this.fanout(item); break;
        case 'accepted': this.accepted(item.ackId); break;
        case 'cursor': this.verification.onCursor(item); break;
        case 'proof': this.verification.onProof(item); break;
        case 'push': this.push(item); break;
        case 'stats': this.collectStats(index, item); break;
      }
    }
  }

  private sendTo(conn: number, frame: string): void {
    this.registry.peer(conn)?.send(frame);
  }

  /**
   * Splits the members of a fanout by the shard hosting their inboxes: one deliver per shard.
   * A sender waiting for its acknowledgement gets it when every part is durable.
   */
  private fanout(f: Fanout): void {
    const { accounts, tpl, except } = f;
    const key = f.key ?? this.messageKey();
    const byShard = new Map<number, { accounts: string[]; online: boolean[] }>();
    for (const a of accounts) {
      const w = this.registry.workerOfInbox(a);
      let part = byShard.get(w);
      if (!part) { part = { accounts: [], online: [] }; byShard.set(w, part); }
      part.accounts.push(a);
      part.online.push(this.registry.isOnline(a));
    }
    const now = Date.now();
    let ackId: number | undefined;
    if (f.ackTo) {
      if (byShard.size === 0) { this.sendTo(f.ackTo.conn, f.ackTo.frame); return; }
      ackId = this.nextAckId++;
      this.pendingAcks.set(ackId, { ...f.ackTo, remaining: byShard.size });
    }
    for (const [w, part] of byShard) {
      const d: Deliver = { t: 'deliver', ...part, tpl, now };
      if (except !== undefined) d.except = except;
      if (ackId !== undefined) d.ackId = ackId;
      d.key = key;
      this.shards[w]!.post(d);
    }
  }

  private keyCounter = 0;
  private readonly keyBase = Date.now().toString(36);

  /** A server-made message id, so that a replay after a shard crash is recognised by the inbox. */
  private messageKey(): string {
    return `~${this.keyBase}.${(this.keyCounter++).toString(36)}`;
  }

  private accepted(ackId: number): void {
    const a = this.pendingAcks.get(ackId);
    if (!a || --a.remaining > 0) return;
    this.pendingAcks.delete(ackId);
    this.sendTo(a.conn, a.frame);
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
        this.toInboxShard(account, { t: 'bounce', account, seqs: [seq], tpl: p.tpl, now: Date.now() });
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
        host.post(item.t === 'deliver' ? { ...item, replay: true } : item);
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
      importHistory: (account, frames) => this.toInboxShard(account, { t: 'import', account, frames, now: Date.now() }),
      importVerification: (account, proof) => this.toVerifier({ t: 'verify', op: 'import', proof: legacyProof(account, proof) }),
      // Batches are answered in order and only once durable: a round of stats comes back after the imports.
      settle: () => this.shardStats().then(() => undefined),
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

  /** For /status: the chain watcher's state when verification runs. */
  chainState(): ReturnType<Verification['chainState']> { return this.verification.chainState(); }

  /** For /status: verification settings and the token issuer's public address. */
  verificationState(): Record<string, unknown> { return this.verification.state(); }
}
