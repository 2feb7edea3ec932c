/**
 * Prometheus text exposition (format 0.0.4) of a status snapshot, with prom-client: the snapshot's
 * figures become gauges and counters of a registry made for the scrape, merged with the live
 * instruments (histograms, error counts, default process and Node figures) when given.
 * Every metric has one # HELP and one # TYPE line followed by all its samples; counters end in
 * `_total`; per-worker figures carry a `worker` label.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { StatusSnapshot } from './snapshot';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

type Kind = 'gauge' | 'counter';
type Labels = Record<string, string | number>;

/** The snapshot's figures as the metrics of a fresh registry; a name a live registry has already is left to it. */
class Exposition {
  readonly registry = new Registry();
  private readonly families = new Map<string, { metric: Gauge | Counter; keys: string }>();

  constructor(private readonly live: Registry[]) {}

  add(name: string, kind: Kind, help: string, value: number | boolean | null | undefined, labels?: Labels): void {
    if (value === null || value === undefined) return;
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
    if (typeof v !== 'number' || Number.isNaN(v)) return;
    if (this.live.some((r) => r.getSingleMetric(name) !== undefined)) return;
    const keys = labels ? Object.keys(labels) : [];
    let fam = this.families.get(name);
    if (!fam) {
      const config = { name, help, labelNames: keys, registers: [this.registry] };
      fam = { metric: kind === 'counter' ? new Counter(config) : new Gauge(config), keys: keys.join(',') };
      this.families.set(name, fam);
    } else if (fam.keys !== keys.join(',')) {
      // A free-form figure whose labels differ from its family's first sample's is left out.
      return;
    }
    const f = fam.metric;
    // A counter read from the node's own tallies: its value as it stands.
    if (f instanceof Counter) {
      if (labels) f.inc(labels, Math.max(0, v)); else f.inc(Math.max(0, v));
    } else if (labels) f.set(labels, v);
    else f.set(v);
  }

  async render(): Promise<string> {
    return (this.live.length === 0 ? this.registry : Registry.merge([this.registry, ...this.live])).metrics();
  }
}

/** Label values as prom-client writes them (backslash, newline and double quote escaped). */
export function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A metric-name fragment from a field name: camelCase and odd characters to snake_case. */
export function metricPart(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^a-zA-Z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toLowerCase();
}

/**
 * Numeric leaves of a free-form state object (delivery and store figures) as gauges
 * named `<prefix>_<path>`. Array elements are told apart by their `partition` field when they
 * have one, else by an `item` label. Strings are left out; depth is bounded.
 */
function addTree(x: Exposition, prefix: string, help: string, value: unknown, labels: Labels, depth = 0): void {
  if (depth > 4 || value === null || value === undefined) return;
  if (typeof value === 'number' || typeof value === 'boolean') {
    x.add(prefix, 'gauge', help, value, labels);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((el, i) => {
      const part = el !== null && typeof el === 'object' ? (el as Record<string, unknown>).partition : undefined;
      const extra: Labels = typeof part === 'number' ? { partition: part } : { item: i };
      if (el !== null && typeof el === 'object' && !Array.isArray(el)) {
        for (const [k, v] of Object.entries(el as Record<string, unknown>)) {
          if (k === 'partition' && typeof part === 'number') continue;
          const name = metricPart(k);
          if (name) addTree(x, `${prefix}_${name}`, help, v, { ...labels, ...extra }, depth + 1);
        }
      } else {
        addTree(x, prefix, help, el, { ...labels, ...extra }, depth + 1);
      }
    });
    return;
  }
  if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const name = metricPart(k);
      if (name) addTree(x, `${prefix}_${name}`, help, v, labels, depth + 1);
    }
  }
}

/** The store's count of damaged records, as the delivery actor's figures carry its stats (null when there are none). */
function storeDamaged(s: StatusSnapshot): number | null {
  const store = s.delivery?.store as { damaged?: unknown } | undefined;
  return typeof store?.damaged === 'number' ? store.damaged : null;
}

export async function renderMetrics(s: StatusSnapshot, live: Registry[] = []): Promise<string> {
  const x = new Exposition(live);
  x.add('imgc_info', 'gauge', 'Service version (value is always 1).', 1, { version: s.version, node: s.nodeVersion });
  x.add('imgc_start_time_seconds', 'gauge', 'Process start time, seconds since the epoch.', Date.parse(s.startedAt) / 1000);
  x.add('imgc_uptime_seconds', 'gauge', 'Seconds since the process started.', s.uptimeSeconds);
  x.add('imgc_ready', 'gauge', '1 when restore finished, the endpoint listens and every worker is up.', s.ready);
  x.add('imgc_connections', 'gauge', 'Open WebSocket connections.', s.connections);
  x.add('imgc_accounts_signed_in', 'gauge', 'Distinct accounts signed in on at least one connection.', s.accounts);
  x.add('imgc_groups_resident', 'gauge', 'Groups held in worker memory.', s.groups.resident);
  x.add('imgc_groups_broken', 'gauge', 'Groups answering an error because their stored state or a decision failed.', s.brokenGroups);
  x.add('imgc_poison_requests_total', 'counter', 'Requests refused because they were being processed at two worker crashes in a row.', s.poisonRequests);
  x.add('imgc_frames_in_total', 'counter', 'Frames received from clients.', s.messages.inTotal);
  x.add('imgc_frames_out_total', 'counter', 'Frames written to client sockets.', s.messages.outTotal);
  x.add('imgc_frames_in_per_second', 'gauge', `Frames received per second over the last ${s.messages.windowSeconds} s.`, s.messages.inPerSecond);
  x.add('imgc_frames_out_per_second', 'gauge', `Frames written per second over the last ${s.messages.windowSeconds} s.`, s.messages.outPerSecond);
  x.add('imgc_slow_sockets_dropped_total', 'counter', 'Sockets dropped because they did not read what they were sent (--max-buffered).', s.slowSocketsDropped);
  x.add('imgc_frames_refused_total', 'counter', 'Frames refused as malformed: not JSON, too large, bad spam, invalid fields, before sign-in.', s.refused.badFrames);
  x.add('imgc_rate_limited_total', 'counter', 'Frames refused by the per-connection rate limit (--rate-limit).', s.refused.rateLimited);
  x.add('imgc_sign_ins_refused_total', 'counter', 'Sign-ins refused: bad or missing signature, invalid fields, one already in progress.', s.refused.signIns);
  x.add('imgc_worker_restarts_total', 'counter', 'Worker thread restarts since the process started.', s.restarts.total);
  x.add('imgc_worker_restart_budget', 'gauge', 'Restarts allowed within the restart window before the process shuts down.', s.restarts.max);
  x.add('imgc_worker_restart_window_seconds', 'gauge', 'Window of the restart budget.', s.restarts.windowMs / 1000);
  x.add('imgc_stats_complete', 'gauge', '1 when every worker answered the stats request in time.', s.statsComplete);

  for (const w of s.workers) {
    const l = { worker: w.index };
    x.add('imgc_worker_up', 'gauge', 'Worker thread running and restored.', w.up, l);
    x.add('imgc_worker_responsive', 'gauge', 'Worker answered the stats request in time.', w.responsive, l);
    x.add('imgc_worker_thread_id', 'gauge', 'Thread id of the current worker.', w.threadId, l);
    x.add('imgc_worker_start_time_seconds', 'gauge', 'When the current worker finished restoring, seconds since the epoch.', w.startedAt === null ? null : Date.parse(w.startedAt) / 1000, l);
    x.add('imgc_worker_mailbox_depth', 'gauge', 'Items queued for the worker or sent and not yet answered.', w.mailboxDepth, l);
    x.add('imgc_worker_groups', 'gauge', 'Groups hosted by the worker.', w.groups, l);
    x.add('imgc_worker_broken_groups', 'gauge', 'Groups of the worker answering an error (bad stored state or a failed decision).', w.brokenGroups, l);
    x.add('imgc_worker_processed_total', 'counter', 'Mailbox items handled by the current worker (restarts from 0 with it).', w.processed, l);
  }

  if (s.limits) {
    const { groups, ...each } = s.limits;
    x.add('imgc_groups', 'gauge', 'Groups the server holds (checked against --max-groups).', groups);
    for (const [name, l] of Object.entries(each)) x.add('imgc_limit', 'gauge', 'Value of each limit (its setting; descriptors: TCP connections the open-file limit leaves room for, 0 when unknown).', l.value, { limit: name });
    for (const [name, l] of Object.entries(each)) x.add('imgc_limit_hits_total', 'counter', 'Requests or connections refused by each limit (descriptors: connections dropped at accept, or accept failures, for lack of descriptors).', l.hits, { limit: name });
  }

  if (s.chain) {
    x.add('imgc_chain_connected', 'gauge', '1 while the chain watcher is connected to the Substrate node.', s.chain.connected);
    x.add('imgc_chain_last_finalized_block', 'gauge', 'Last finalized block number seen by the chain watcher.', s.chain.lastFinalized);
    x.add('imgc_chain_last_processed_block', 'gauge', 'Last block whose transfers the chain watcher processed.', s.chain.lastProcessed);
    x.add('imgc_chain_reconnects_total', 'counter', 'Chain watcher connection attempts after the first.', s.chain.reconnects);
  }
  if (s.store) {
    x.add('imgc_store_writable', 'gauge', '1 while the store takes writes; 0 while the disk is full (writes are refused with error 45007).', s.store.writable);
    x.add('imgc_store_writable_since_seconds', 'gauge', 'When imgc_store_writable last changed, seconds since the epoch.', Date.parse(s.store.since) / 1000);
    x.add('imgc_store_failed_commits_total', 'counter', 'Store commits that failed for lack of space (their writes were lost and their senders told).', s.store.failedCommits);
    x.add('imgc_store_writes_refused_total', 'counter', 'Requests refused with error 45007 while the store was full.', s.store.writesRefused);
  }
  x.add('imgc_store_damaged_records_total', 'counter', 'Stored records found damaged (checksum) since the start: never served, each logged once with where it is.', storeDamaged(s));
  const cl = s.cluster;
  if (cl) {
    const ledger = (cl.ledger ?? {}) as Record<string, number>;
    x.add('imgc_cluster_engine_connected', 'gauge', '1 while connected to the cluster\'s NATS (cluster mode); writes are refused while 0.', cl.engine.connected);
    x.add('imgc_cluster_nodes', 'gauge', 'Live nodes of the cluster as this node sees them.', Array.isArray(cl.nodes) ? cl.nodes.length : null);
    x.add('imgc_cluster_partitions_served', 'gauge', 'Partitions whose group actors this node serves.', Array.isArray(cl.serving) ? cl.serving.length : null);
    x.add('imgc_cluster_settled', 'gauge', '1 when every partition is owned by the node it places on, as this node sees it.', cl.settled === true);
    x.add('imgc_cluster_ledger_applied_seq', 'gauge', 'Ledger sequence this node\'s replica has applied through.', ledger.appliedSeq ?? null);
    x.add('imgc_cluster_ledger_published_total', 'counter', 'Ledger entries this node published.', ledger.published ?? null);
    x.add('imgc_cluster_ledger_fenced_total', 'counter', 'Ledger entries refused because another node had claimed their partition.', ledger.fenced ?? null);
    x.add('imgc_cluster_ledger_failed_total', 'counter', 'Ledger entries that could not be stored (NATS unreachable past the timeout).', ledger.failed ?? null);
    x.add('imgc_cluster_ledger_voided_total', 'counter', 'Ledger entries stored too late to count, void on every node.', ledger.voided ?? null);
    x.add('imgc_cluster_calls_forwarded_total', 'counter', 'Group calls sent to the node that owns their partition.', typeof cl.forwarded === 'number' ? cl.forwarded : null);
    x.add('imgc_cluster_waiting_calls', 'gauge', 'Group calls waiting for their partition to have an owner.', typeof cl.waitingCalls === 'number' ? cl.waitingCalls : null);
  }
  addTree(x, 'imgc_delivery', 'Delivery actor and store figure (appended, duplicates, pushed, backlog frames, syncing, trimmed; store_*: backend figures).', s.delivery, {});
  if (s.verification !== null && typeof s.verification === 'object' && !Array.isArray(s.verification)) {
    // The chain watcher's figures are above already.
    const { chain: _chain, ...rest } = s.verification as Record<string, unknown>;
    addTree(x, 'imgc_verification', 'Verification by payment figure.', rest, {});
  }

  const si = s.signIn;
  if (si) {
    for (const [method, n] of Object.entries(si.byMethod)) x.add('imgc_signins_total', 'counter', 'Sign-ins by method: sig (signature checked), resume (resume token), open (unsigned, --auth open).', n, { method });
    for (const [reason, n] of Object.entries(si.failures)) x.add('imgc_signin_failures_total', 'counter', 'Sign-ins refused, by reason (bad-sig, no-sig, queue-full; resume tokens: malformed, bad-mac, other-account, expired, revoked).', n, { reason });
    x.add('imgc_handshake_timeouts_total', 'counter', 'Sockets closed (code 4008) because they did not sign in within --handshake-ms.', si.handshakeTimeouts);
    x.add('imgc_signin_queue_waiting', 'gauge', 'Sign-ins waiting for or in signature verification.', si.queue.waiting);
    x.add('imgc_signin_queue_max', 'gauge', 'Bound on waiting sign-ins (--signin-queue); past it a sign-in gets 45003.', si.queue.max);
    x.add('imgc_signin_verify_seconds_avg', 'gauge', 'Mean time a signature check spent in the verification pool (waiting and running), seconds.', si.verifyWait.avgMs / 1000);
    x.add('imgc_signin_verify_seconds_max', 'gauge', 'Longest time a signature check spent in the verification pool, seconds.', si.verifyWait.maxMs / 1000);
  }

  x.add('imgc_process_resident_memory_bytes', 'gauge', 'Resident set size of the process.', s.process.rssBytes);
  x.add('imgc_process_heap_used_bytes', 'gauge', 'V8 heap in use on the main thread.', s.process.heapUsedBytes);
  const eld = s.process.eventLoopDelayMs;
  if (eld) {
    const help = `Main-thread event loop delay over the last ${s.messages.windowSeconds} s window, seconds.`;
    x.add('imgc_event_loop_delay_seconds', 'gauge', help, eld.p50 / 1000, { quantile: '0.5' });
    x.add('imgc_event_loop_delay_seconds', 'gauge', help, eld.p99 / 1000, { quantile: '0.99' });
    x.add('imgc_event_loop_delay_seconds', 'gauge', help, eld.max / 1000, { quantile: '1' });
  }
  return x.render();
}
