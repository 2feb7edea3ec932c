/**
 * The status snapshot: every figure the status server reports, gathered from the node in one go.
 * /status serves it as JSON, /metrics renders it as Prometheus text (src/status/metrics.ts).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ChainView, ClusterView, LimitsView, ShardStats, SignInView, StatusSource } from './source';

export interface WorkerStatus {
  index: number;
  threadId: number | null;
  up: boolean;
  /** ISO time the current worker finished restoring; null while down or starting. */
  startedAt: string | null;
  /** Items queued for the worker or sent and not yet answered. */
  mailboxDepth: number;
  /** The worker answered the stats request within the timeout. */
  responsive: boolean;
  groups: number | null;
  /** Mailbox items handled since this worker started (a counter; restarts from 0 with the worker). */
  processed: number | null;
  /** Groups answering an error because their stored state or a decision failed, and their ids (the first few). */
  brokenGroups?: number | null;
  broken?: string[];
  /** Journal and checkpoint state as the shard's store reports it. */
}

export interface StatusSnapshot {
  service: 'imgc';
  version: string;
  nodeVersion: string;
  pid: number;
  time: string;
  startedAt: string;
  uptimeSeconds: number;
  /** Restore finished, endpoint listening, every worker up. */
  ready: boolean;
  connections: number;
  accounts: number;
  groups: { resident: number };
  /** Groups answering an error (bad stored state or a failed decision), over every worker that answered. */
  brokenGroups?: number;
  /** Requests refused as poison: being processed at two crashes of their worker in a row. */
  poisonRequests?: number;
  /**
   * The delivery actor (appends, pushes, backlogs being read, retention trims) and its store
   * (backend, epoch, last offset, bytes on disk).
   */
  delivery: Record<string, unknown> | null;
  /**
   * Whether the store takes writes: `writable` false while the disk is full (requests that would
   * write get error 45007), `since` when that last changed, `writesRefused` how many were refused.
   */
  store?: { writable: boolean; since: string; reason: string | null; failedCommits: number; writesRefused: number } | null;
  messages: {
    inTotal: number;
    outTotal: number;
    inPerSecond: number;
    outPerSecond: number;
    windowSeconds: number;
  };
  workers: WorkerStatus[];
  /** Indexes of workers that did not answer the stats request in time. */
  unresponsiveWorkers: number[];
  /** Every worker answered: the totals above cover all of them. */
  statsComplete: boolean;
  restarts: { total: number; max: number; windowMs: number };
  /** Sockets dropped because they did not read what they were sent (past --max-buffered bytes waiting). */
  slowSocketsDropped: number;
  /** Error frames answered to clients, by kind: malformed frames, rate-limit hits, refused sign-ins. */
  refused: { badFrames: number; rateLimited: number; signIns: number };
  /**
   * Each limit: its `value` (the setting) and `hits` (requests or connections refused by it since
   * start); `groups` is the count of groups held, checked against maxGroups. Null without a node.
   */
  limits?: LimitsView | null;
  chain: ChainView | null;
  /** Verification by payment (enabled, target, …) when the node runs it, else null. */
  verification: unknown;
  /** Sign-ins by method (sig, resume, open), failures by reason, the verification queue and wait, handshake deadline closes. */
  signIn?: SignInView | null;
  cluster?: ClusterView | null;
  process: {
    rssBytes: number;
    heapUsedBytes: number;
    /** Event loop delay over the last complete rate window, ms (null before the first window ends). */
    eventLoopDelayMs: { p50: number; p99: number; max: number } | null;
  };
}

/** Live figures the server keeps between requests (rate meters, event loop histogram). */
export interface LiveFigures {
  inPerSecond(): number;
  outPerSecond(): number;
  windowSeconds: number;
  eventLoopDelayMs(): { p50: number; p99: number; max: number } | null;
}

let cachedVersion: string | undefined;

/** The version in the service's package.json (found upwards from this file). */
export function serviceVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'imgc' && typeof pkg.version === 'string') return (cachedVersion = pkg.version);
    } catch { /* not here: look one level up */ }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return (cachedVersion = 'unknown');
}

/** Resolves with `p`'s value, or `undefined` once `ms` passed without it. */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    p.then(
      (v) => { clearTimeout(t); resolve(v); },
      () => { clearTimeout(t); resolve(undefined); },
    );
  });
}

/**
 * Asks every shard for its figures, waiting at most `timeoutMs`. The result is index-aligned;
 * `undefined` marks a shard that did not answer. With `shardStatsOf` each shard is asked on its
 * own; otherwise all shards answer together or none counts as answered.
 */
export async function gatherShardStats(source: StatusSource, timeoutMs: number): Promise<Array<ShardStats | undefined>> {
  const n = source.shards.length;
  // No shard yet (asked before the node started): nothing to wait for, and nothing to ask.
  if (n === 0) return [];
  if (source.shardStatsOf) {
    const of = source.shardStatsOf.bind(source);
    return Promise.all(source.shards.map((h) => within(of(h.index), timeoutMs)));
  }
  const all = await within(source.shardStats(), timeoutMs);
  if (!all) return new Array<undefined>(n).fill(undefined);
  return Array.from({ length: n }, (_, i) => all[i]);
}

/** True when the node serves: restore finished, endpoint listening, every worker up, the store takes writes. */
export function isReady(source: StatusSource): boolean {
  return readiness(source).ready;
}

/** What /readyz answers: ready or not, and why not. */
export function readiness(source: StatusSource): { ready: boolean; restored: boolean; workersDown: number[]; storeWritable: boolean; reason?: string } {
  const workersDown = source.shards.filter((s) => !s.up).map((s) => s.index);
  const store = source.storeHealth?.() ?? null;
  const storeWritable = store === null || store.writable;
  const cluster = source.clusterState?.() ?? null;
  let reason: string | undefined;
  if (!source.ready) reason = 'starting';
  else if (source.shards.length === 0 || workersDown.length > 0) reason = 'workers down';
  else if (!storeWritable) reason = `store full since ${new Date(store!.since).toISOString()}: writes are refused`;
  else if (cluster !== null && !cluster.engine.connected) reason = 'cut off from the cluster\'s engine (NATS): writes are refused';
  else if (cluster !== null && !cluster.ready) reason = 'cluster replica not current';
  return { ready: reason === undefined, restored: source.ready, workersDown, storeWritable, ...(reason === undefined ? {} : { reason }) };
}

export async function takeSnapshot(source: StatusSource, live: LiveFigures, statsTimeoutMs: number): Promise<StatusSnapshot> {
  const stats = await gatherShardStats(source, statsTimeoutMs);
  const now = Date.now();
  const workers: WorkerStatus[] = source.shards.map((h, i) => {
    const s = stats[i];
    return {
      index: h.index,
      threadId: h.threadId ?? null,
      up: h.up,
      startedAt: h.startedAt > 0 ? new Date(h.startedAt).toISOString() : null,
      mailboxDepth: h.mailbox.depth,
      responsive: s !== undefined,
      groups: s ? s.groups : null,
      processed: s ? s.processed : null,
      brokenGroups: s ? s.brokenGroups ?? 0 : null, broken: s?.broken ?? [],
    };
  });
  let resident = 0, broken = 0;
  for (const s of stats) if (s) { resident += s.groups; broken += s.brokenGroups ?? 0; }
  const c = source.counters;
  const mem = process.memoryUsage();
  const chain = source.chainState?.() ?? null;
  const st = source.storeHealth?.() ?? null;
  return {
    service: 'imgc',
    version: serviceVersion(),
    nodeVersion: process.version,
    pid: process.pid,
    time: new Date(now).toISOString(),
    startedAt: new Date(source.startedAt).toISOString(),
    uptimeSeconds: Math.max(0, (now - source.startedAt) / 1000),
    ready: isReady(source),
    connections: source.connections,
    accounts: source.registry.accountCount,
    groups: { resident },
    brokenGroups: broken,
    poisonRequests: c.poison ?? 0,
    delivery: source.deliveryState?.() ?? null,
    store: st === null ? null : { writable: st.writable, since: new Date(st.since).toISOString(), reason: st.reason, failedCommits: st.failedCommits, writesRefused: st.refused },
    messages: {
      inTotal: c.framesIn,
      outTotal: c.framesOut,
      inPerSecond: live.inPerSecond(),
      outPerSecond: live.outPerSecond(),
      windowSeconds: live.windowSeconds,
    },
    workers,
    unresponsiveWorkers: workers.filter((w) => !w.responsive).map((w) => w.index),
    statsComplete: workers.every((w) => w.responsive),
    restarts: { total: c.restarts, max: source.settings.restartMax, windowMs: source.settings.restartWindowMs },
    slowSocketsDropped: c.droppedSlow ?? 0,
    refused: { badFrames: c.badFrames ?? 0, rateLimited: c.rateLimited ?? 0, signIns: c.signInsRefused ?? 0 },
    limits: source.limitsState?.() ?? null,
    chain: chain ? { ...chain } : null,
    verification: source.verificationState?.() ?? null,
    signIn: source.signInState?.() ?? null,
    cluster: source.clusterState?.() ?? null,
    process: {
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      eventLoopDelayMs: live.eventLoopDelayMs(),
    },
  };
}
