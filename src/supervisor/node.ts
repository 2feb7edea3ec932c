/**
 * The node: a switchboard. It wires the parts together at start, routes each request a connection
 * makes to the actor that decides it (one line each), and hands what it does not decide to its
 * carrier (carrier/port.ts), picked once by supervisor/open-carrier.ts: embedded or cluster, the
 * node never asks which. Its other jobs live beside it, one file each: shard supervision
 * (shards.ts), admission (admission.ts), sign-in (sign-in.ts), the /status views (status-views.ts),
 * backups (backups.ts) and the legacy import (legacy-import.ts). docs/architecture.md follows a
 * message through it.
 */
import { detailBytesBound, type Settings } from '../config';
import { logger, type Logger } from '../log';
import { Code } from '../protocol/codes';
import { errorFrame, STORAGE_FULL_TEXT, type Request } from '../protocol/frames';
import { Connection, type Router, type SignInFailure, type SignInMethod } from '../actors/connection';
import { decideDirect } from '../actors/direct';
import type { FromShard } from '../actors/envelopes';
import type { Delivery } from '../actors/delivery';
import { EphemeralOut } from '../actors/ephemeral-out';
import type { Decided } from '../carrier/ops';
import type { Carrier } from '../carrier/port';
import { Endpoint } from '../net/endpoint';
import { REVOKED_ADDRESS, type Issued, type ResumeCheck } from '../net/sessions';
import { Admission } from './admission';
import { newCounters } from './counters';
import { DetailOnline } from './detail-online';
import { DiskWatch } from './disk-watch';
import { importLegacy, importTarget } from './legacy-import';
import { Limits } from './limits';
import { localSide } from './local-side';
import { startMainActors, type MainActors } from './main-actors';
import { QUOTAS_ADDRESS, QuotaStore } from './quota-store';
import { Registry } from './registry';
import { RestartBudget } from './restart-budget';
import { ShardHost, shardConfig } from './shard-host';
import { Shards } from './shards';
import { SignIn } from './sign-in';
import { checkDataDir, StartupError } from './startup';
import { StatusViews } from './status-views';
import { Verification } from './verification';

export { StartupError };

/** Group requests that only read: answered while the store is full. */
const READ_GROUP_ACTS: ReadonlySet<string> = new Set(['detail']);

export class Node implements Router {
  readonly startedAt = Date.now();
  readonly counters = newCounters();
  readonly registry: Registry;
  readonly limits: Limits;
  readonly signing: SignIn;
  readonly verification: Verification;
  readonly shards: Shards<ShardHost>;
  readonly status: StatusViews;
  readonly ephemeralOut = new EphemeralOut();
  readonly log = logger({ part: 'node' });
  private readonly admission: Admission;
  private readonly disk: DiskWatch;
  private readonly quotaStore: QuotaStore;
  private readonly detailOnline = new DetailOnline(() => this.actors?.presence);
  carrier: Carrier | undefined;
  actors: MainActors | undefined;
  private endpoint: Endpoint<Connection> | undefined;
  onFatal: (err: unknown) => void = () => {};
  ready = false;

  constructor(readonly settings: Settings, private readonly openCarrier: (s: Settings, log: Logger) => Promise<Carrier>) {
    const s = settings;
    this.registry = new Registry(s.partitions, s.workers);
    this.limits = new Limits({
      maxConnections: s.maxConnections, maxConnectionsPerIp: s.maxConnectionsPerIp, groupsPerHour: s.groupsPerHour, maxGroups: s.maxGroups,
      groupsPerHourPerAddress: s.groupsPerHourPerAddress, strangerAddsPerHour: s.strangerAddsPerHour, minFreeMb: s.minFreeMb,
      maxGroupSize: s.maxGroupSize, maxBlocked: s.maxBlocked, detailBytes: Math.floor(s.maxBuffered / 8),
    }, this.log.child({ component: 'limits' }));
    this.signing = new SignIn({ threads: s.signinThreads, queue: s.signinQueue, resumeTtlMs: s.resumeTtlMs, handshakeMs: s.handshakeMs }, this.counters, this.log);
    this.disk = new DiskWatch(s.data, s.minFreeMb, this.log.child({ component: 'disk' }));
    this.admission = new Admission({ cutOff: () => this.carrier?.cutOff(), limits: this.limits, disk: this.disk, counters: this.counters, log: this.log });
    this.quotaStore = new QuotaStore(this.limits, (state) => this.on.submit([{ t: 'state', state }]));
    this.verification = new Verification(
      { endpoint: s.chainEndpoint, target: s.verifyTarget, dataDir: s.data, tokenTtlMs: s.tokenTtlMs },
      { toVerifier: (item) => this.on.verify(item), sendTo: (conn, frame) => this.on.sendTo(conn, frame) },
    );
    this.shards = new Shards(s.workers, {
      host: (index, events) => new ShardHost(shardConfig(s, index, this.limits.values.detailBytes), events),
      workerOf: (address) => this.registry.workerOf(address),
      stateOf: (address) => this.carrier?.stateOf(address),
      output: (index, items) => this.shardOutput(items),
      sendTo: (conn, frame) => this.on.sendTo(conn, frame),
      fatal: (err) => this.onFatal(err),
      budget: new RestartBudget(s.restartMax, s.restartWindowMs),
      counters: this.counters,
      log: this.log,
    });
    this.status = new StatusViews(this);
  }

  async start(): Promise<{ port: number }> {
    const s = this.settings;
    checkDataDir(s.data);
    const carrier = (this.carrier = await this.openCarrier(s, this.log));
    const actors = (this.actors = startMainActors(s, carrier, this.registry, this.ephemeralOut, {
      // A revocation list from any node is merged with the stored one; groups are counted as they come and go.
      applying: (st) => this.signing.applying(st, (address) => carrier.store.states.get(address)),
      applied: (st) => this.limits.groupChanged(st),
      send: (conn, frame) => this.sendHere(conn, frame),
      fatal: (err) => this.onFatal(err),
    }));
    this.admission.watch(carrier.store);
    await this.shards.start();
    if (s.importLegacy) {
      // Batches are answered in order: a round of stats comes back after the imports.
      const settle = (): Promise<void> => this.shards.stats().then(() => actors.delivery.settle());
      await importLegacy(s.importLegacy, s.data, importTarget({ store: carrier.store, delivery: actors.delivery, verify: (call) => carrier.verify(call), settle }));
    }
    // A cluster node replays the ledger until its store is current, then takes its partitions.
    await carrier.start(localSide({ partitions: s.partitions, registry: this.registry, shards: this.shards, verification: this.verification, ephemeralOut: this.ephemeralOut, actors, send: (conn, frame) => this.sendHere(conn, frame), fatal: (err) => this.onFatal(err) })).catch((err: unknown) => { throw new StartupError((err as Error).message); });
    this.limits.countStored(carrier.store.states);
    this.quotaStore.start(carrier.store.states.get(QUOTAS_ADDRESS));
    this.disk.start();
    if (detailBytesBound(s.maxGroupSize, s.maxBlocked) > this.limits.values.detailBytes) {
      this.log.warn({ maxGroupSize: s.maxGroupSize, maxBlocked: s.maxBlocked, maxDetailBytes: this.limits.values.detailBytes }, 'a full group\'s detail may exceed max-buffered / 8: such detail requests are refused (44744)');
    }
    await this.verification.start(carrier.serverKeySeed);
    // Resume tokens: the carrier's key; the revocation list is an actor state, handed on as one.
    this.signing.startSessions(await carrier.resumeKey(), carrier.store.states.get(REVOKED_ADDRESS), (state) => carrier.submit([{ t: 'state', state }]));
    this.endpoint = new Endpoint<Connection>(
      { host: s.host, port: s.port, maxFrame: s.maxFrame, heartbeatMs: s.heartbeatMs, tlsCert: s.tlsCert, tlsKey: s.tlsKey, maxConnections: s.maxConnections, maxConnectionsPerIp: s.maxConnectionsPerIp, firstConnId: carrier.firstConnId },
      { open: (id, socket, spam, log) => this.opened(new Connection(id, socket, spam, this, log)), closed: (c) => this.closed(c), limits: this.limits },
    );
    const addr = await this.endpoint.listen().catch((err: unknown) => { throw StartupError.fromListen(err, 'port', s.host, s.port); });
    this.ready = true;
    this.log.info({ port: addr.port, host: s.host, workers: s.workers, auth: s.auth, data: s.data, store: s.store }, 'IMGC listening');
    return { port: addr.port };
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.admission.stop();
    this.limits.warnings.stop();
    this.disk.stop();
    await this.verification.stop();
    await this.endpoint?.close();
    // The quota windows go into the store before the carrier stops (kept across the restart).
    if (this.carrier) this.quotaStore.stop();
    await this.shards.stop(this.settings.shutdownMs);
    // After the shards: their last output lands in the store (and is handed on) before the carrier closes.
    await this.actors?.delivery.settle();
    await this.carrier?.stop();
    await this.actors?.delivery.close();
    await this.carrier?.store.close();
    await this.signing.close();
  }

  // ---- wiring ----

  private opened(c: Connection): Connection { this.registry.add(c); return c; }

  private closed(c: Connection): void {
    this.registry.remove(c);
    this.actors?.delivery.closed(c);
    this.actors?.presence.closed(c);
    this.detailOnline.closed(c.id);
  }

  // ---- actor output ----

  /** A shard's batch: what its actors decided goes to the carrier; the verifier's cursor and proofs to verification. */
  private shardOutput(items: FromShard[]): void {
    const decided: Decided[] = [];
    for (const item of items) {
      if (item.t === 'post' || item.t === 'state') decided.push(item);
      else if (item.t === 'reply') {
        if (item.limit) this.limits.hit(item.limit, 'group request refused by a limit', { limit: item.limit, max: this.limits.values[item.limit] });
        decided.push(item);
      } else if (item.t === 'cursor') this.verification.onCursor(item);
      else if (item.t === 'proof') this.verification.onProof(item);
    }
    if (decided.length > 0) this.on.decided(decided, Date.now());
    // Typing, presence and receipts queued since the last batch join this turn's (corked) writes.
    this.ephemeralOut.flush();
  }

  /** A frame to a socket of this node; a `detail` asked with `online` gets the online members added. */
  private sendHere(conn: number, frame: string): void {
    this.registry.peer(conn)?.send(this.detailOnline.answer(conn, frame));
  }

  private get on(): Carrier {
    if (!this.carrier) throw new Error('node not started');
    return this.carrier;
  }

  private get delivery(): Delivery {
    if (!this.actors) throw new Error('node not started');
    return this.actors.delivery;
  }

  /** Test-only fault switch: crashes one shard in the middle of its work. */
  crashShard(index: number): void { this.shards.crash(index); }

  /** The operator's revocation (POST /revoke): every token of the account issued until now. */
  revokeAccount(account: string): Promise<void> {
    this.signing.revokeAccount(account);
    return new Promise((resolve) => this.on.afterDurable(resolve));
  }

  // ---- Router: what connection actors ask for, one line each ----

  get auth(): 'signed' | 'open' { return this.settings.auth; }
  get maxFrame(): number { return this.settings.maxFrame; }
  get maxBuffered(): number { return this.settings.maxBuffered; }
  get rateLimit(): number { return this.settings.rateLimit; }
  get handshakeMs(): number { return this.settings.handshakeMs; }
  received(): void { this.counters.framesIn++; }
  sent(): void { this.counters.framesOut++; }
  droppedSlow(): void { this.counters.droppedSlow++; }
  refused(peer: Connection, code: number, text: string, request: unknown): void { this.signing.refused(peer, code, text, request); }
  verifySignature(message: string, signature: string, address: string): Promise<boolean> { return this.signing.verifySignature(message, signature, address); }
  checkResume(token: string, account: string): ResumeCheck { return this.signing.checkResume(token, account); }
  issueResume(account: string): Issued { return this.signing.issueResume(account); }
  signedIn(method: SignInMethod): void { this.signing.signedIn(method); }
  signInFailed(reason: SignInFailure): void { this.signing.signInFailed(reason); }
  handshakeTimedOut(): void { this.signing.handshakeTimedOut(); }
  signIn(peer: Connection, account: string): void { this.registry.signIn(peer, account); }

  logout(account: string, session: { id: string; exp: number } | undefined, all: boolean, done: () => void): void {
    if (all) this.signing.revokeAccount(account);
    else if (session) this.signing.revokeId(session.id, session.exp);
    // The answer leaves once the revocation is durable: a restart right after cannot bring the token back.
    this.on.afterDurable(done);
  }

  signOut(peer: Connection): void { this.registry.signOut(peer); }
  away(peer: Connection, away: boolean): void { this.registry.setAway(peer, away); }
  /** The account's positions come from the carrier where another node may have moved them. */
  sync(peer: Connection): void { this.delivery.sync(peer, this.on.positionsOf(peer.account!)); }
  history(peer: Connection, r: Request): void { this.delivery.history(peer, r); }
  ack(account: string, upTo: number): void { this.delivery.ack(account, upTo); }
  presence(peer: Connection, r: Request): void { this.actors?.presence.request(peer, r); }
  typing(peer: Connection, r: Request): void { this.actors?.typing.request(peer, r); }

  direct(peer: Connection, r: Request): void {
    if (!this.admission.writes(peer, r) || !this.admission.direct(peer, r)) return;
    const post = decideDirect(peer.account!, peer.id, r);
    // To an account that blocked the sender: dropped, and acknowledged as usual (a block is not revealed).
    if (this.actors?.blocks.has(r.to as string, peer.account!)) return void (post.ackTo && peer.send(post.ackTo.frame));
    this.on.post({ t: 'post', post, at: Date.now() });
  }

  blocks(peer: Connection, r: Request): void {
    if (r.act === 'blocked' || this.admission.writes(peer, r)) this.actors?.blocks.request(peer, r);
  }

  keys(peer: Connection, r: Request): void { if (r.act === 'count' || this.admission.writes(peer, r)) this.actors?.keys.request(peer, r); }

  change(peer: Connection, r: Request): void {
    if (this.admission.writes(peer, r)) this.on.change({ account: peer.account!, conn: peer.id, request: r, at: Date.now() });
  }

  read(peer: Connection, r: Request): void {
    if (this.admission.writes(peer, r)) this.actors?.receipts.request(peer, r, () => peer.send(errorFrame(Code.STORAGE_FULL, STORAGE_FULL_TEXT, r)));
  }

  group(peer: Connection, id: string, r: Request): void {
    if (!READ_GROUP_ACTS.has(r.act) && !this.admission.writes(peer, r)) return;
    if (r.act === 'create' && !this.admission.create(peer, r)) return;
    if (r.act === 'detail' && r.online === true) this.detailOnline.asked(peer.id, id);
    const screened = this.actors?.blocks.screen(peer.account!, r, (a) => this.limits.takeStrangerAdd(a));
    this.on.group({ t: 'group', id, origin: { conn: peer.id, account: peer.account!, request: r }, now: Date.now(), ...(screened && { screened }) });
  }

  vertify(peer: Connection, r: Request): void {
    if (r.act !== 'reg' || this.admission.writes(peer, r)) this.verification.handle(peer, r);
  }
}
