/**
 * The node owns the whole service: it opens the store and hands it to the delivery actor, starts
 * the shards and the endpoint, routes every request to the actor that decides it, carries actor
 * output back, and restarts a shard that dies. It decides nothing itself: a switchboard.
 * How a group message travels: socket → connection actor (main thread, validates) → mailbox of the
 * group's shard (one postMessage per batch) → the group actor checks membership and serializes the
 * message once → back to main as a post → the delivery actor appends it once to the group's log
 * (its offset is every recipient's `seq`) and writes it to the sockets of the members online;
 * members away read it from the log when they sign in. A direct message skips the shard:
 * connection → direct decision → delivery.
 *
 * In cluster mode (--cluster) the same actors run on every node; what changes is where the
 * switches lead (supervisor/cluster-role.ts): a group call may go to the node that owns its
 * partition, and what the actors decide goes into the ledger (cluster/ledger.ts) instead of
 * straight to the delivery actor, which applies every node's entries in the ledger's order.
 */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { backupRoot, detailBytesBound, type Settings } from '../config';
import { logger } from '../log';
import { every } from '../log-aggregate';
import { Code } from '../protocol/codes';
import { errorFrame, refusedAnswer, STORAGE_FULL_TEXT, type Request } from '../protocol/frames';
import type { Connection, Router, SignInFailure, SignInMethod } from '../actors/connection';
import { Delivery } from '../actors/delivery';
import { decideDirect } from '../actors/direct';
import type { FromShard, GroupCall, Post, Reply, ShardStats, StateOut, ToShard, VerifyCall } from '../actors/envelopes';
import type { Entry } from '../cluster/entry';
import { ClusterRole, type ClusterHost } from './cluster-role';
import { publishingStates } from './publishing-states';
import { partitionOf } from './placement';
import type { GroupRecord } from '../actors/group-state';
import type { ShardConfig } from '../actors/shard-config';
import { VERIFY_ADDRESS, type VerifierState } from '../actors/verifier';
import { groupAddress } from '../actors/address';
import { EphemeralOut } from '../actors/ephemeral-out';
import { GroupMembers } from '../actors/group-members';
import { Presence } from '../actors/presence';
import { Receipts } from '../actors/receipts';
import { Typing } from '../actors/typing';
import { openStore } from '../store/open';
import { backupDataDir, listBackups, pruneBackups, type BackupResult } from '../store/backup';
import { groupConv, type Store, type StoreHealth } from '../store/ports';
import { migrateDataDir } from '../migrate/migrate';
import { Endpoint } from '../net/endpoint';
import { SignatureChecker } from '../net/signatures';
import { loadOrCreateResumeKey, mergeRevoked, REVOKED_ADDRESS, Sessions, type Issued, type ResumeCheck } from '../net/sessions';
import { importLegacy, legacyProof, type ImportTarget } from './legacy-import';
import { Registry } from './registry';
import { DetailOnline } from './detail-online';
import { checkDataDir, StartupError } from './startup';
import type { InFlight } from './mailbox';
import { ShardHost } from './shard-host';
import { RestartBudget } from './restart-budget';
import { Verification } from './verification';
import { Limits, type LimitsView } from './limits';
import type { ClusterView, SignInView } from '../status/source';
import { errorsTotal } from '../status/instruments';

export { StartupError };

/** A crash loop within the restart budget writes one `shard restarted` line per 10 s, with the count. */
const warnRestarted = every('shard restarted', 10_000);

/** While the store is full: how often it is probed for space (a small write). */
const STORE_PROBE_MS = 2000;

/** Group requests that only read: answered while the store is full. */
const READ_GROUP_ACTS = new Set(['detail']);

/** Group requests that only read state or fan out: deciding them twice is harmless. */
const REPLAYABLE_GROUP_ACTS = new Set(['detail', 'chat', 'notice']);

/** Crashes of its shard a request may be processed at before it counts as poison and is refused. */
const POISON_CRASHES = 2;

export interface Counters {
  framesIn: number;
  framesOut: number;
  restarts: number;
  /** Sockets dropped because they did not read what they were sent. */
  droppedSlow: number;
  /** Requests refused because they were being processed at two crashes of their shard in a row. */
  poison: number;
  /** Frames refused as malformed or out of order (not JSON, too large, bad spam, invalid fields, before sign-in). */
  badFrames: number;
  /** Frames refused by the per-connection rate limit. */
  rateLimited: number;
  /** Sign-ins (`active`) refused: bad or missing signature, one already in progress, invalid fields. */
  signInsRefused: number;
  /** Requests that would write refused with 45007 while the store was full. */
  storeRefused: number;
}

/** Refusals that answer a well-formed request the service declines (not a bad frame). */
const DECLINED: ReadonlySet<number> = new Set([Code.NOT_PERMITTED, Code.VERIFY_DISABLED, Code.UNAVAILABLE, Code.INTERNAL]);

/** Sign-in figures: by method, failures by reason, sockets closed by the handshake deadline. */
export interface SignInCounters {
  byMethod: Record<SignInMethod, number>;
  failures: Record<SignInFailure, number>;
  handshakeTimeouts: number;
}

export class Node implements Router {
  readonly registry: Registry;
  readonly shards: ShardHost[] = [];
  readonly counters: Counters = { framesIn: 0, framesOut: 0, restarts: 0, droppedSlow: 0, poison: 0, badFrames: 0, rateLimited: 0, signInsRefused: 0, storeRefused: 0 };
  private storeProbe: NodeJS.Timeout | undefined;
  readonly startedAt = Date.now();
  private readonly signatures: SignatureChecker;
  private sessions: Sessions | undefined;
  readonly signIns: SignInCounters = {
    byMethod: { sig: 0, resume: 0, open: 0 },
    failures: { 'bad-sig': 0, 'no-sig': 0, 'queue-full': 0, malformed: 0, 'bad-mac': 0, 'other-account': 0, expired: 0, revoked: 0 },
    handshakeTimeouts: 0,
  };
  private readonly budget: RestartBudget;
  private endpoint: Endpoint | undefined;
  private store: Store | undefined;
  /** Cluster mode (--cluster): the engine, the ledger, the partitions this node owns. */
  private cluster: ClusterRole | undefined;
  private deliveryActor: Delivery | undefined;
  /** Presence, typing and read receipts: on this thread, beside the sockets (see src/actors/presence.ts). */
  private presenceActor: Presence | undefined;
  private typingActor: Typing | undefined;
  private receiptsActor: Receipts | undefined;
  private groupMembers: GroupMembers | undefined;
  /** Ephemeral frames leave with the next batch of actor output (see src/actors/ephemeral-out.ts). */
  private readonly ephemeralOut = new EphemeralOut();
  private readonly detailOnline = new DetailOnline(() => this.presenceActor);
  private readonly log = logger({ part: 'node' });
  readonly verification: Verification;
  readonly limits: Limits;
  onFatal: (err: unknown) => void = () => {};
  ready = false;

  constructor(readonly settings: Settings) {
    this.registry = new Registry(settings.partitions, settings.workers);
    this.signatures = new SignatureChecker({ threads: settings.signinThreads, maxWaiting: settings.signinQueue });
    this.budget = new RestartBudget(settings.restartMax, settings.restartWindowMs);
    this.limits = new Limits({
      maxConnections: settings.maxConnections,
      maxConnectionsPerIp: settings.maxConnectionsPerIp,
      groupsPerHour: settings.groupsPerHour,
      maxGroups: settings.maxGroups,
      maxGroupSize: settings.maxGroupSize,
      maxBlocked: settings.maxBlocked,
      detailBytes: Math.floor(settings.maxBuffered / 8),
    }, this.log.child({ component: 'limits' }));
    this.verification = new Verification(
      {
        endpoint: settings.chainEndpoint, target: settings.verifyTarget, dataDir: settings.data, tokenTtlMs: settings.tokenTtlMs,
        ...(settings.cluster !== undefined ? { cluster: { keySeed: () => this.cluster!.serverKeySeed() } } : {}),
      },
      { toVerifier: (item) => this.toVerifier(item), sendTo: (conn, frame) => this.sendTo(conn, frame) },
    );
  }

  private toVerifier(item: VerifyCall): void {
    if (this.cluster) this.cluster.verify(item);
    else this.shards[this.registry.workerOf(VERIFY_ADDRESS)]!.post(item);
  }

  get auth(): 'signed' | 'open' { return this.settings.auth; }
  get maxFrame(): number { return this.settings.maxFrame; }
  get maxBuffered(): number { return this.settings.maxBuffered; }
  droppedSlow(): void { this.counters.droppedSlow++; }

  /** Every error frame a connection answers with: counted by kind, logged at debug with the remote address. */
  refused(peer: Connection, code: number, text: string, request: unknown): void {
    errorsTotal.inc({ code });
    const act = request !== null && typeof request === 'object' ? (request as { act?: unknown }).act : undefined;
    let kind: 'rate limited' | 'sign-in refused' | 'bad frame';
    if (code === Code.RATE_LIMITED) { this.counters.rateLimited++; kind = 'rate limited'; }
    else if (act === 'active') { this.counters.signInsRefused++; kind = 'sign-in refused'; }
    else if (!DECLINED.has(code)) { this.counters.badFrames++; kind = 'bad frame'; }
    else return;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ conn: peer.id, remote: peer.remoteAddress, account: peer.account, code, why: text }, kind);
  }
  get rateLimit(): number { return this.settings.rateLimit; }
  get handshakeMs(): number { return this.settings.handshakeMs; }
  signedIn(method: SignInMethod): void { this.signIns.byMethod[method]++; }
  signInFailed(reason: SignInFailure): void { this.signIns.failures[reason]++; }
  handshakeTimedOut(): void { this.signIns.handshakeTimeouts++; }
  received(): void { this.counters.framesIn++; }
  sent(): void { this.counters.framesOut++; }

  async start(): Promise<{ port: number }> {
    const s = this.settings;
    checkDataDir(s.data);
    if (s.cluster !== undefined) {
      // Cluster mode: durable state is in JetStream; this node's store is a replica of it.
      this.cluster = await ClusterRole.open(s, this.clusterHost(), this.log.child({ component: 'cluster' })).catch((err: unknown) => {
        throw new StartupError(`cluster ${s.clusterName} at ${s.cluster} cannot be joined: ${(err as Error).message}`);
      });
      this.store = this.cluster.replica;
      const links = this.cluster.links;
      this.ephemeralOut.remote = (account, frame) => links.ephemeral(account, frame);
    } else {
      this.store = await openStore({ backend: s.store, dir: s.data, fsync: s.fsync }).catch((err: unknown) => {
        throw new StartupError(`the store in ${s.data} cannot be opened: ${(err as Error).message}`);
      });
      // A directory written by the journal-and-checkpoint version moves into the store, once.
      await migrateDataDir(s.data, this.store);
    }
    const store = this.store;
    store.onHealth((h) => this.storeHealthChanged(h));
    this.deliveryActor = new Delivery(store, this.registry, { retainCount: s.retainCount, retainAgeMs: s.retainAgeMs, groupBacklog: s.groupBacklog, maxBuffered: s.maxBuffered });
    this.deliveryActor.onFatal = (err) => this.onFatal(err);
    this.deliveryActor.replica = this.cluster !== undefined;
    const cluster = this.cluster;
    // The age sweep runs on each node's clock; in a cluster every replica must trim alike, so the
    // node serving partition 0 puts what its sweep finds into the ledger, and every node applies it.
    this.deliveryActor.start(cluster ? (conv, upTo) => { if (cluster.ownership.serves(0)) cluster.submit([{ t: 'trim', conv, upTo }]); } : undefined);
    this.groupMembers = new GroupMembers(store.states);
    // In a cluster an account is online while it has a socket on any node (cluster/presence-sync.ts).
    const peers = cluster ? { peer: (id: number) => this.registry.peer(id), peersOf: (a: string) => this.registry.peersOf(a), isOnline: (a: string) => cluster.presence.isOnline(a) } : this.registry;
    this.presenceActor = new Presence(peers, store.positions, this.ephemeralOut);
    this.registry.onPresence = cluster
      ? (account, online) => cluster.presence.localChanged(account, online)
      : (account, online) => this.presenceActor?.changed(account, online);
    this.typingActor = new Typing(this.registry, this.groupMembers, this.ephemeralOut);
    this.receiptsActor = new Receipts(this.cluster ? publishingStates(store, this.cluster) : store, this.registry, this.groupMembers, (fn, lost) => this.afterDurable(fn, lost), this.ephemeralOut);
    this.deliveryActor.annotateHistory = (conv, offsets) => this.receiptsActor!.annotate(conv, offsets);
    for (let index = 0; index < s.workers; index++) {
      const cfg: ShardConfig = {
        index,
        workers: s.workers,
        partitions: s.partitions,
        limits: { maxGroupSize: s.maxGroupSize, maxBlocked: s.maxBlocked, maxDetailBytes: this.limits.values.detailBytes },
        testFaults: s.testFaults,
        logLevel: s.logLevel,
        verify: { target: s.verifyTarget, ttlMs: s.verifyTtlMs },
        verifierState: undefined,
        groupsResident: s.groupsResident,
        groupIdleMs: s.groupIdleMs,
      };
      this.shards.push(new ShardHost(cfg, {
        output: (i, items) => this.onShardOutput(i, items),
        died: (i, inFlight, err) => this.onShardDied(i, inFlight, err),
      }));
    }
    await Promise.all(this.shards.map((h) => this.startShard(h)));
    if (s.importLegacy) await importLegacy(s.importLegacy, s.data, this.importTarget());
    // A cluster node replays the ledger until its replica is current, then takes its partitions.
    await this.cluster?.start().catch((err: unknown) => { throw new StartupError(`cluster ${s.clusterName}: ${(err as Error).message}`); });
    this.limits.groups = this.countGroups();
    if (detailBytesBound(s.maxGroupSize, s.maxBlocked) > this.limits.values.detailBytes) {
      this.log.warn({ maxGroupSize: s.maxGroupSize, maxBlocked: s.maxBlocked, maxDetailBytes: this.limits.values.detailBytes }, 'a full group\'s detail may exceed max-buffered / 8: such detail requests are refused (44744)');
    }
    await this.verification.start();
    // Resume tokens: the MAC key beside the server key, the revocation list in the store (actor state).
    // In a cluster the key is the cluster's (every node accepts every node's tokens).
    const resumeKey = this.cluster ? await this.cluster.resumeKey() : loadOrCreateResumeKey(s.data);
    this.sessions = new Sessions(resumeKey, s.resumeTtlMs, store.states.get(REVOKED_ADDRESS),
      (state) => this.writeState({ t: 'state', address: REVOKED_ADDRESS, state }));
    this.endpoint = new Endpoint(
      { host: s.host, port: s.port, maxFrame: s.maxFrame, heartbeatMs: s.heartbeatMs, tlsCert: s.tlsCert, tlsKey: s.tlsKey, maxConnections: s.maxConnections, maxConnectionsPerIp: s.maxConnectionsPerIp, firstConnId: this.cluster?.firstConnId },
      this,
      { opened: (c) => this.registry.add(c), closed: (c) => { this.registry.remove(c); this.deliveryActor?.closed(c); this.presenceActor?.closed(c); this.detailOnline.closed(c.id); }, limits: this.limits },
    );
    const addr = await this.endpoint.listen().catch((err: unknown) => { throw StartupError.fromListen(err, 'port', s.host, s.port); });
    this.ready = true;
    this.log.info({ port: addr.port, host: s.host, workers: s.workers, auth: s.auth, data: s.data, store: s.store, cluster: this.cluster ? { name: s.clusterName, node: this.cluster.nodeId } : undefined }, 'IMGC listening');
    return { port: addr.port };
  }

  /** Starts (or restarts) a shard; the one hosting the verifier gets its stored state. */
  private startShard(h: ShardHost): Promise<void> {
    if (this.registry.workerOf(VERIFY_ADDRESS) === h.index) h.cfg.verifierState = this.stateOf(VERIFY_ADDRESS) as VerifierState | undefined;
    return h.start();
  }

  /**
   * The store went full (one warning; requests that would write are refused and counted) or took
   * writes again (one info line). While full it is probed every STORE_PROBE_MS.
   */
  private storeHealthChanged(h: StoreHealth): void {
    if (!h.writable) {
      this.log.warn({ reason: h.reason, failedCommits: h.failedCommits }, 'store full: refusing writes (error 45007) until space returns');
      this.storeProbe ??= setInterval(() => {
        try {
          this.store?.probe();
        } catch (err) {
          this.log.debug({ err }, 'store probe failed');
        }
      }, STORE_PROBE_MS);
      this.storeProbe.unref();
    } else {
      clearInterval(this.storeProbe);
      this.storeProbe = undefined;
      this.log.info({ refused: this.counters.storeRefused, failedCommits: h.failedCommits }, 'store writable again');
    }
  }

  /** While the store is full a request that would write is answered 45007 (and counted), not executed; cut off from a cluster's engine, 45003. */
  private refusedFull(peer: Connection, r: Request): boolean {
    if (this.cluster && !this.cluster.engine.health().connected) {
      // Cut off from the cluster's engine: nothing can be stored, so nothing is taken (the client retries, maybe elsewhere).
      this.counters.storeRefused++;
      errorsTotal.inc({ code: Code.UNAVAILABLE });
      peer.send(errorFrame(Code.UNAVAILABLE, 'this server is cut off from the cluster\'s store, please retry (or connect to another server)', r));
      return true;
    }
    if (this.store === undefined || this.store.health().writable) return false;
    this.counters.storeRefused++;
    errorsTotal.inc({ code: Code.STORAGE_FULL });
    peer.send(errorFrame(Code.STORAGE_FULL, STORAGE_FULL_TEXT, r));
    return true;
  }

  /** For /status, /metrics and /readyz: whether the store takes writes, and how often it refused. */
  storeHealth(): (StoreHealth & { refused: number }) | null {
    return this.store === undefined ? null : { ...this.store.health(), refused: this.counters.storeRefused };
  }

  /** Groups in the store, counted once at start (page by page); kept by +1/-1 from then on. */
  private countGroups(): number {
    let n = 0;
    let after: string | undefined;
    for (;;) {
      const page = this.db.states.list('group:', after, 10_000);
      n += page.length;
      if (page.length < 10_000) return n;
      after = page[page.length - 1];
    }
  }

  async stop(): Promise<void> {
    this.ready = false;
    clearInterval(this.storeProbe);
    this.storeProbe = undefined;
    this.limits.warnings.stop();
    await this.verification.stop();
    await this.endpoint?.close();
    await Promise.all(this.shards.map((h) => h.stop(this.settings.shutdownMs)));
    // After the shards: their last output still lands in the store before it closes. In a
    // cluster the positions go to the engine before its connection closes.
    if (this.cluster) {
      await this.deliveryActor?.settle();
      await this.cluster.stop();
    }
    await this.deliveryActor?.close();
    await this.store?.close();
    await this.signatures.close();
  }

  // ---- Router: what connection actors ask for ----

  verifySignature(message: string, signature: string, address: string): Promise<boolean> {
    return this.signatures.verify(message, signature, address);
  }

  checkResume(token: string, account: string): ResumeCheck {
    return this.sessionsOrThrow.check(token, account);
  }

  issueResume(account: string): Issued {
    return this.sessionsOrThrow.issue(account);
  }

  /** For /status: the backup root and what it holds. */
  backupsState(): { root: string; keep: number; kept: number } {
    const root = backupRoot(this.settings);
    return { root, keep: this.settings.backupsKeep, kept: listBackups(root).length };
  }

  /** The operator's revocation (POST /revoke): every token of the account issued until now. */
  revokeAccount(account: string): Promise<void> {
    this.sessionsOrThrow.revokeAccount(account);
    return new Promise((resolve) => this.afterDurable(resolve));
  }

  logout(account: string, session: { id: string; exp: number } | undefined, all: boolean, done: () => void): void {
    if (all) this.sessionsOrThrow.revokeAccount(account);
    else if (session) this.sessionsOrThrow.revokeId(session.id, session.exp);
    // The answer leaves once the revocation is durable: a restart right after cannot bring the token back.
    this.afterDurable(done);
  }

  private get sessionsOrThrow(): Sessions {
    if (!this.sessions) throw new Error('node not started');
    return this.sessions;
  }

  /** For /status: sign-ins by method and failures by reason, the verification queue, resume tokens. */
  signInState(): SignInView {
    const f = this.signatures.figures;
    return {
      byMethod: { ...this.signIns.byMethod },
      failures: { ...this.signIns.failures },
      handshakeTimeouts: this.signIns.handshakeTimeouts,
      handshakeMs: this.settings.handshakeMs,
      verifier: this.signatures.impl ?? null,
      verifyThreads: this.signatures.threads,
      queue: { waiting: this.signatures.waiting, max: this.settings.signinQueue, refusedFull: f.refusedFull },
      verifyWait: { checked: f.checked, avgMs: f.checked > 0 ? Math.round((f.waitMsTotal / f.checked) * 1000) / 1000 : 0, maxMs: Math.round(f.waitMsMax * 1000) / 1000 },
      resume: this.sessions?.stats() ?? null,
    };
  }

  signIn(peer: Connection, account: string): void { this.registry.signIn(peer, account); }
  signOut(peer: Connection): void { this.registry.signOut(peer); }

  sync(peer: Connection): void {
    // In a cluster the account may have been served by another node: its positions come from the engine.
    this.delivery.sync(peer, this.cluster?.positions.fetch(peer.account!));
  }

  direct(peer: Connection, r: Request): void {
    if (this.refusedFull(peer, r)) return;
    const post = decideDirect(peer.account!, peer.id, r);
    if (this.cluster) this.cluster.submit([{ t: 'post', post, at: Date.now() }]);
    else this.delivery.post(post, Date.now());
  }

  history(peer: Connection, r: Request): void {
    this.delivery.history(peer, r);
  }

  change(peer: Connection, r: Request): void {
    if (this.refusedFull(peer, r)) return;
    if (!this.cluster) return this.delivery.change(peer, r);
    this.cluster.submit([{ t: 'change', account: peer.account!, conn: peer.id, request: r, at: Date.now() }]);
  }

  presence(peer: Connection, r: Request): void { this.presenceActor?.request(peer, r); }

  typing(peer: Connection, r: Request): void { this.typingActor?.request(peer, r); }

  read(peer: Connection, r: Request): void {
    if (this.refusedFull(peer, r)) return;
    this.receiptsActor?.request(peer, r, () => peer.send(errorFrame(Code.STORAGE_FULL, STORAGE_FULL_TEXT, r)));
  }

  group(peer: Connection, id: string, r: Request): void {
    if (!READ_GROUP_ACTS.has(r.act) && this.refusedFull(peer, r)) return;
    if (r.act === 'create' && !this.admitCreate(peer, r)) return;
    if (r.act === 'detail' && r.online === true) this.detailOnline.asked(peer.id, id);
    const call = { t: 'group' as const, id, origin: { conn: peer.id, account: peer.account!, request: r }, now: Date.now() };
    if (this.cluster) this.cluster.group(call);
    else this.shards[this.registry.workerOfGroup(id)]!.post(call);
  }

  /** The server's group count and the account's hourly quota; a refusal is answered here (44029). */
  private admitCreate(peer: Connection, r: Request): boolean {
    const limits = this.limits;
    if (limits.groups >= limits.values.maxGroups) {
      limits.hit('maxGroups', 'group create refused: max-groups reached', { max: limits.values.maxGroups });
      peer.send(errorFrame(Code.RATE_LIMITED, `the server holds its most groups (${limits.values.maxGroups})`, r));
      return false;
    }
    const retryAfterMs = limits.takeGroupQuota(peer.account!);
    if (retryAfterMs !== undefined) {
      limits.hit('groupsPerHour', 'group create refused: groups-per-hour reached', { account: peer.account, max: limits.values.groupsPerHour });
      peer.send(quotaFrame(`at most ${limits.values.groupsPerHour} groups per hour; retry in ${retryAfterMs} ms`, r, retryAfterMs));
      return false;
    }
    return true;
  }

  ack(account: string, upTo: number): void {
    this.delivery.ack(account, upTo);
  }

  vertify(peer: Connection, r: Request): void {
    if (r.act === 'reg' && this.refusedFull(peer, r)) return;
    this.verification.handle(peer, r);
  }

  /** The delivery actor and the store; there from start() on. */
  private get delivery(): Delivery {
    if (!this.deliveryActor) throw new Error('node not started');
    return this.deliveryActor;
  }

  private get db(): Store {
    if (!this.store) throw new Error('node not started');
    return this.store;
  }

  // ---- actor output ----

  private onShardOutput(index: number, items: FromShard[]): void {
    const now = Date.now();
    const decided: Array<Post | StateOut | Reply> = [];
    for (const item of items) {
      switch (item.t) {
        case 'reply':
          if (item.limit) this.limits.hit(item.limit, 'group request refused by a limit', { limit: item.limit, max: this.limits.values[item.limit] });
          decided.push(item);
          break;
        case 'post':
        case 'state':
          decided.push(item);
          break;
        case 'load': this.loaded(index, item.address, item.calls, Math.max(0, ...item.calls.map((c) => c.crashes ?? 0))); break;
        case 'cursor': this.verification.onCursor(item); break;
        case 'proof': this.verification.onProof(item); break;
        case 'stats': this.collectStats(index, item); break;
      }
    }
    if (decided.length > 0) {
      if (this.cluster) this.cluster.actorOutput(decided, now);
      else this.storeDecided(decided, now);
    }
    // Typing, presence and receipts queued since the last batch join this turn's (corked) writes.
    this.ephemeralOut.flush();
  }

  /** Embedded: what the actors decided goes into the store; answers to a change leave once it is durable. */
  private storeDecided(items: Array<Post | StateOut | Reply>, now: number): void {
    const changed = items.some((i) => i.t === 'state');
    for (const item of items) {
      switch (item.t) {
        case 'reply':
          // A change lost to a full store is answered 45007, never confirmed.
          if (changed) this.delivery.afterDurable(() => this.sendTo(item.conn, item.frame), () => this.sendTo(item.conn, refusedAnswer(item.frame, Code.STORAGE_FULL, STORAGE_FULL_TEXT)));
          else this.sendTo(item.conn, this.detailOnline.answer(item.conn, item.frame));
          break;
        case 'post': this.delivery.post(item, now); break;
        case 'state': this.applyState(item); break;
      }
    }
  }

  /** An actor's new state into the store (embedded), or into the ledger (cluster, applied everywhere). */
  private writeState(s: StateOut): void {
    if (this.cluster) this.cluster.submit([{ t: 'state', state: s }]);
    else this.applyState(s);
  }

  /** A new state as it lands in this node's store (embedded: at once; cluster: as the ledger is applied). */
  private applyState(s: StateOut): void {
    let item = s;
    if (s.address === REVOKED_ADDRESS) {
      // Revocations of every node are kept, whoever wrote last (see Sessions.adopt).
      item = { ...s, state: mergeRevoked(this.db.states.get(REVOKED_ADDRESS), s.state) };
      this.sessions?.adopt(item.state);
    }
    this.groupMembers?.changed(item.address);
    this.countGroupChange(item);
    this.delivery.state(item);
  }

  /** Output that leaves once everything written before is durable (in a cluster: stored in JetStream and applied here). */
  private afterDurable(fn: () => void, lost?: () => void): void {
    if (this.cluster) this.cluster.ledger.after(() => this.delivery.afterDurable(fn, lost), lost);
    else this.delivery.afterDurable(fn, lost);
  }

  /** A stored state, or (cluster) the one this node wrote and has not applied yet. */
  private stateOf(address: string): unknown {
    const pending = this.cluster?.pendingState(address);
    return pending ? pending.state : this.db.states.get(address);
  }

  /** What the cluster role needs of this node. */
  private clusterHost(): ClusterHost {
    return {
      apply: (entry, seq) => this.applyEntry(entry, seq),
      applied: (seq) => this.cluster!.replica.appliedThrough(seq),
      frameIn: (conn, frame) => this.registry.peer(conn)?.send(this.detailOnline.answer(conn, frame)),
      presence: {
        isOnline: (a) => this.registry.isOnline(a),
        accounts: () => this.registry.onlineAccounts(),
        changed: (a, online) => this.presenceActor?.changed(a, online),
      },
      ephemeralIn: (frames) => {
        for (const [account, frame] of frames) for (const p of this.registry.peersOf(account) ?? []) this.ephemeralOut.send(p, frame);
      },
      decide: (call) => this.shards[this.registry.workerOfGroup(call.id)]!.post(call),
      verify: (call) => {
        if (call.op === 'reg' && !Number.isFinite(call.decimals)) {
          // Asked on a node that does not watch the chain: the decimals are this (watching) node's.
          const decimals = this.verification.decimals();
          if (decimals === undefined) return this.sendTo(call.conn, errorFrame(Code.UNAVAILABLE, 'the chain node is not reachable yet, try again later', call.request));
          call = { ...call, decimals };
        }
        this.shards[this.registry.workerOf(VERIFY_ADDRESS)]!.post(call);
      },
      leads: (partition, on) => {
        if (partition === partitionOf(VERIFY_ADDRESS, this.settings.partitions)) void this.verification.lead(on);
      },
      evict: (partitions) => this.evict(partitions),
      sendTo: (conn, frame) => this.sendTo(conn, frame),
      connections: () => this.registry.connectionCount,
    };
  }

  /** One ledger entry, applied to this node's replica and sockets (the same operations on every node). */
  private applyEntry(entry: Entry, seq: number): void {
    for (const op of entry.ops) {
      switch (op.t) {
        case 'post': this.delivery.post(op.post, op.at); break;
        case 'state': this.applyState(op.state); break;
        case 'change': this.delivery.changeBy(op.account, op.conn, op.request, op.at); break;
        case 'reply':
          if (this.registry.peer(op.conn)) this.delivery.afterDurable(() => this.sendTo(op.conn, this.detailOnline.answer(op.conn, op.frame)));
          break;
        case 'append': this.delivery.importRecord(op.entry); break;
        case 'join': this.db.positions.join(op.account, op.conv, op.since); break;
        case 'trim': this.delivery.trimApplied(op.conv, op.upTo); break;
        case 'claim': break;
      }
    }
    this.cluster!.replica.appliedThrough(seq);
    this.ephemeralOut.flush();
  }

  /** Cluster mode: partitions this node gained or lost; their actors are read again from the replica. */
  private async evict(partitions: number[]): Promise<void> {
    const verifierPart = partitionOf(VERIFY_ADDRESS, this.settings.partitions);
    for (const h of this.shards) {
      h.post({ t: 'evict', partitions, ...(partitions.includes(verifierPart) && h.index === this.registry.workerOf(VERIFY_ADDRESS) ? { verifierState: this.stateOf(VERIFY_ADDRESS) } : {}) });
    }
    // A shard answers in order: once its figures come back, what it had taken before is decided and out.
    await this.shardStats();
  }

  /** A group's stored state back to its shard, with the calls that wait for it (read now: the newest). */
  private loaded(index: number, address: string, calls: GroupCall[], crashes: number): void {
    this.shards[index]!.post({ t: 'loaded', address, state: this.stateOf(address), calls }, { crashes, alone: crashes > 0 });
  }

  /**
   * A group's new state: a create (every member joined) counts +1, a destroy (no state) -1. A
   * group always keeps at least one member, so no other change has every member joined.
   */
  private countGroupChange(item: StateOut): void {
    if (!item.address.startsWith('group:')) return;
    const g = item.state as GroupRecord | undefined;
    if (g === undefined) this.limits.groups = Math.max(0, this.limits.groups - 1);
    else if (item.joined !== undefined && item.joined.length === g.group.length && (item.left?.length ?? 0) === 0) this.limits.groups++;
  }

  private sendTo(conn: number, frame: string): void {
    if (this.cluster && !this.cluster.isLocal(conn)) return this.cluster.forward(conn, frame);
    this.registry.peer(conn)?.send(frame);
  }

  // ---- supervision ----

  private onShardDied(index: number, inFlight: InFlight<ToShard>[], err: unknown): void {
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
    // What was being processed at two crashes in a row is poison: never replayed again, refused.
    // What was being processed at one goes back alone, so a second crash names it alone.
    for (const { item, crashes } of inFlight) {
      // A control message (a stats query, the fault switch itself) is not worth a second try.
      if (item.t === 'control') continue;
      const poison = crashes >= POISON_CRASHES;
      if (item.t === 'group') {
        if (poison) this.refusePoison(index, item, crashes);
        else if (!REPLAYABLE_GROUP_ACTS.has(item.origin.request.act)) this.refuseRestarted(item);
        else host.post({ ...item, crashes }, { crashes, alone: crashes > 0 });
      } else if (item.t === 'loaded') {
        // The calls that waited for a group's state: decided again with the newest state.
        const calls: GroupCall[] = [];
        for (const call of item.calls) {
          if (poison) this.refusePoison(index, call, crashes);
          else if (!REPLAYABLE_GROUP_ACTS.has(call.origin.request.act)) this.refuseRestarted(call);
          else calls.push({ ...call, crashes: Math.max(crashes, call.crashes ?? 0) });
        }
        if (calls.length > 0 || !poison) this.loaded(index, item.address, calls, crashes);
      } else if (item.t === 'evict') {
        host.post(item);
      } else if (poison) {
        this.log.warn({ shard: index, crashes, kind: item.t, op: item.op }, 'poison: a verification call crashed its shard twice; not replayed');
        if (item.op === 'reg' || item.op === 'proof') this.sendTo(item.conn, errorFrame(Code.INTERNAL, 'this request could not be processed', item.request));
      } else {
        host.post(item, { crashes, alone: crashes > 0 });
      }
    }
    this.startShard(host).then(
      () => warnRestarted(this.log, { shard: index, restarts: this.counters.restarts }, 'shard restarted'),
      (e: unknown) => { this.log.fatal({ err: e, shard: index }, 'shard failed to restart'); this.onFatal(e); },
    );
  }

  private refuseRestarted(call: GroupCall): void {
    this.sendTo(call.origin.conn, errorFrame(Code.UNAVAILABLE, 'part of the server restarted, please retry', call.origin.request));
  }

  /** A call that crashed its shard twice: its requester hears an error; the log names the act and group, never the text. */
  private refusePoison(index: number, call: GroupCall, crashes: number): void {
    this.counters.poison++;
    this.log.warn({ shard: index, crashes, act: call.origin.request.act, group: call.id, account: call.origin.account }, 'poison: a request crashed its shard twice; not replayed');
    this.sendTo(call.origin.conn, errorFrame(Code.INTERNAL, 'this request could not be processed', call.origin.request));
  }

  private importTarget(): ImportTarget {
    const now = Date.now();
    return {
      // Imported groups never overwrite a live one.
      importGroup: (group: GroupRecord) => {
        const address = groupAddress(group.id);
        if (this.db.states.get(address) === undefined) this.delivery.state({ t: 'state', address, state: group, conv: groupConv(group.id), joined: group.group });
      },
      importHistory: (account, frames) => { for (const tpl of frames) this.delivery.importOwn(account, tpl, now); },
      importVerification: (account, proof) => this.toVerifier({ t: 'verify', op: 'import', proof: legacyProof(account, proof) }),
      // Batches are answered in order: a round of stats comes back after the imports.
      settle: () => this.shardStats().then(() => this.delivery.settle()),
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

  /**
   * An online backup of the data directory, cut at one instant of the store: into `dest`, or a new
   * directory under the backup root. A backup made directly under the root then prunes the root's
   * IMGC backups beyond --backups-keep.
   */
  async backup(dest: string | undefined): Promise<BackupResult & { dest: string; pruned: string[] }> {
    const log = this.log.child({ component: 'backup' });
    const root = resolve(backupRoot(this.settings));
    const target = resolve(dest ?? join(root, `imgc-${new Date().toISOString().replace(/[:.]/g, '-')}`));
    const r = await backupDataDir(this.settings.data, target, { store: this.db, log });
    let pruned: string[] = [];
    if (existsSync(root) && realpathSync(dirname(target)) === realpathSync(root)) {
      pruned = pruneBackups(root, this.settings.backupsKeep, { protect: [this.settings.data, target], log });
    }
    return { ...r, dest: target, pruned };
  }

  /** For /status: the delivery actor and the store. */
  deliveryState(): Record<string, unknown> | null {
    if (!this.deliveryActor) return null;
    return { ...this.deliveryActor.stats(), ephemeralSent: this.ephemeralOut.sent, presence: this.presenceActor?.stats(), typing: this.typingActor?.stats(), receipts: this.receiptsActor?.stats() };
  }

  /** For /status: each limit's value and how often it was hit, and the groups held. */
  limitsState(): LimitsView { return this.limits.view(); }

  /** For /status: the chain watcher's state when verification runs. */
  chainState(): ReturnType<Verification['chainState']> { return this.verification.chainState(); }

  /** For /status: the cluster (null when embedded). */
  clusterState(): ClusterView | null {
    return this.cluster ? this.cluster.status() as unknown as ClusterView : null;
  }

  /** For /status: verification settings and the token issuer's public address. */
  verificationState(): Record<string, unknown> { return this.verification.state(); }
}

/** 44029 with a `retryAfterMs` key beside the error text (clients that do not know it see an ordinary error). */
function quotaFrame(text: string, request: Request, retryAfterMs: number): string {
  const f = JSON.parse(errorFrame(Code.RATE_LIMITED, text, request)) as Record<string, unknown>;
  return JSON.stringify({ ...f, retryAfterMs });
}
