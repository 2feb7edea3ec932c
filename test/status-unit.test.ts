/**
 * Status server parts on their own: the rate meter, the Prometheus rendering, and the server
 * against a stand-in node (real HTTP on loopback) for what the real service cannot easily show:
 * a stuck worker reported as unresponsive instead of hanging /status.
 */
import { expect } from 'chai';
import type { ShardStats } from '../src/actors/envelopes';
import { collectProcessMetrics, errorsTotal, instruments, storeFlushSeconds } from '../src/status/instruments';
import { escapeLabelValue, metricPart, renderMetrics } from '../src/status/metrics';
import { RateMeter } from '../src/status/rates';
import { startStatusServer, type StatusServer } from '../src/status/server';
import type { StatusSnapshot } from '../src/status/snapshot';
import type { ShardView, StatusSource } from '../src/status/source';
import type { Node } from '../src/supervisor/node';
import type { Verification } from '../src/supervisor/verification';

/** Compile-time checks: the node as it stands is a status source; verification feeds its hooks. */
export function nodeIsASource(n: Node): StatusSource { return n.status; }
export function verificationFeedsStatus(v: Verification): Pick<StatusSource, 'chainState' | 'verificationState'> {
  return { chainState: () => v.chainState(), verificationState: () => v.state() };
}

describe('status: rate meter', () => {
  it('gives the per-second rate over the sliding window and forgets what left it', () => {
    let t = 0;
    let v = 0;
    const m = new RateMeter(() => v, { windowMs: 10_000, intervalMs: 1000, now: () => t });
    expect(m.rate()).to.equal(0);
    for (let i = 0; i < 10; i++) { t += 1000; v += 50; m.sample(); }
    expect(m.rate()).to.equal(50);
    // Quiet for the whole window: the rate falls to 0.
    for (let i = 0; i < 11; i++) { t += 1000; m.sample(); }
    expect(m.rate()).to.equal(0);
    // A burst shows at once (the rate reads the counter live), averaged over the window.
    v += 100;
    expect(m.rate()).to.equal(10);
  });

  it('restarts the window when the counter goes down', () => {
    let t = 0;
    let v = 1000;
    const m = new RateMeter(() => v, { windowMs: 5000, now: () => t });
    t += 1000; v = 5; m.sample();
    t += 1000; v = 25;
    expect(m.rate()).to.equal(20);
  });
});

function snapshot(over: Partial<StatusSnapshot> = {}): StatusSnapshot {
  return {
    service: 'imgc', version: '1.2.3', nodeVersion: 'v20.0.0', pid: 1, time: new Date(0).toISOString(),
    startedAt: new Date(0).toISOString(), uptimeSeconds: 12.5, ready: true, connections: 3, accounts: 2,
    groups: { resident: 4 }, delivery: { appended: 7, trimmed: 1, 'odd-key"': 1, store: { backend: 'lmdb', lastOffset: 9 } },
    messages: { inTotal: 100, outTotal: 200, inPerSecond: 1.5, outPerSecond: 3, windowSeconds: 10 },
    workers: [
      { index: 0, threadId: 1, up: true, startedAt: new Date(1000).toISOString(), mailboxDepth: 0, responsive: true, groups: 4, processed: 10 },
      { index: 1, threadId: null, up: false, startedAt: null, mailboxDepth: 3, responsive: false, groups: null, processed: null },
    ],
    unresponsiveWorkers: [1], statsComplete: false,
    restarts: { total: 2, max: 5, windowMs: 60_000 }, slowSocketsDropped: 4, refused: { badFrames: 0, rateLimited: 0, signIns: 0 },
    chain: { connected: true, lastFinalized: 42, lastProcessed: 41, reconnects: 0 },
    verification: { enabled: true, target: 'x', chain: { connected: true }, pending: 2 },
    process: { rssBytes: 1, heapUsedBytes: 2, eventLoopDelayMs: { p50: 1, p99: 5, max: 9 } },
    ...over,
  };
}

describe('status: Prometheus rendering', () => {
  let lines: string[] = [];
  before(async () => {
    // prom-client separates families with a blank line.
    lines = (await renderMetrics(snapshot())).trimEnd().split('\n').filter((l) => l !== '');
  });

  it('gives every metric one HELP and one TYPE line, then its samples', () => {
    const seen = new Set<string>();
    let current = '';
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      if (l.startsWith('# HELP ')) {
        const name = l.split(' ')[2]!;
        expect(seen.has(name), `${name} declared once`).to.equal(false);
        seen.add(name);
        expect(lines[i + 1]).to.match(new RegExp(`^# TYPE ${name} (counter|gauge)$`));
        current = name;
        i++;
        continue;
      }
      expect(l).to.match(/^[a-z_]+(\{[a-z_]+="(?:[^"\\]|\\.)*"(,[a-z_]+="(?:[^"\\]|\\.)*")*\})? -?[\d.e+-]+$/);
      expect(l.startsWith(current + ' ') || l.startsWith(current + '{'), `${l} under ${current}`).to.equal(true);
    }
  });

  it('renders the figures, with per-worker and per-partition labels', () => {
    expect(lines).to.include('imgc_connections 3');
    expect(lines).to.include('imgc_slow_sockets_dropped_total 4');
    expect(lines).to.include('imgc_frames_in_total 100');
    expect(lines).to.include('# TYPE imgc_frames_in_total counter');
    expect(lines).to.include('imgc_worker_up{worker="0"} 1');
    expect(lines).to.include('imgc_worker_up{worker="1"} 0');
    expect(lines).to.include('imgc_worker_responsive{worker="1"} 0');
    expect(lines).to.include('imgc_worker_mailbox_depth{worker="1"} 3');
    expect(lines.some((l) => l.startsWith('imgc_worker_groups{worker="1"}')), 'no figure for an unresponsive worker').to.equal(false);
    expect(lines).to.include('imgc_chain_last_finalized_block 42');
    expect(lines).to.include('imgc_delivery_appended 7');
    expect(lines).to.include('imgc_delivery_odd_key 1');
    expect(lines).to.include('imgc_delivery_store_last_offset 9');
    expect(lines).to.include('imgc_verification_enabled 1');
    expect(lines).to.include('imgc_verification_pending 2');
    expect(lines.some((l) => l.startsWith('imgc_verification_chain')), 'chain not repeated').to.equal(false);
    expect(lines).to.include('imgc_event_loop_delay_seconds{quantile="0.99"} 0.005');
    expect(lines).to.include('imgc_info{version="1.2.3",node="v20.0.0"} 1');
  });

  it('leaves chain metrics out without a chain watcher, and escapes label values', async () => {
    expect(await renderMetrics(snapshot({ chain: null }))).to.not.contain('imgc_chain_');
    expect(await renderMetrics(snapshot({ version: 'a"b' }))).to.contain('imgc_info{version="a\\"b",node="v20.0.0"} 1');
    expect(escapeLabelValue('a"b\\c\nd')).to.equal('a\\"b\\\\c\\nd');
    expect(metricPart('lastCheckpointAt')).to.equal('last_checkpoint_at');
  });

  it('merges the live instruments (histograms, errors by code, process figures); a live metric wins over the snapshot\'s of the same name', async () => {
    collectProcessMetrics();
    storeFlushSeconds.observe(0.002);
    errorsTotal.inc({ code: 44003 });
    const text = await renderMetrics(snapshot(), [instruments]);
    expect(text).to.contain('# TYPE imgc_store_flush_seconds histogram');
    expect(text).to.match(/^imgc_store_flush_seconds_bucket\{le="0\.0025"\} [1-9]/m);
    expect(text).to.match(/^imgc_store_flush_seconds_count [1-9]/m);
    expect(text).to.contain('# TYPE imgc_delivery_latency_seconds histogram');
    expect(text).to.contain('# TYPE imgc_signin_seconds histogram');
    expect(text).to.match(/^imgc_errors_total\{code="44003"\} [1-9]/m);
    expect(text).to.contain('# TYPE imgc_nodejs_heap_size_used_bytes gauge');
    expect(text).to.contain('imgc_connections 3');
    // The process's resident memory comes from prom-client alone (same name, same meaning), once.
    expect(text.match(/^# TYPE imgc_process_resident_memory_bytes /gm)).to.have.length(1);
    expect(text).to.not.match(/^imgc_process_resident_memory_bytes 1$/m);
  });
});

/** A stand-in node: shards whose stats answer, or never do. */
function fakeSource(opts: { stuck: number[]; perShard: boolean }): StatusSource {
  const shards: ShardView[] = [0, 1, 2].map((index) => ({ index, up: true, threadId: 10 + index, startedAt: Date.now(), mailbox: { depth: index } }));
  const stats = (i: number): Promise<ShardStats> => opts.stuck.includes(i)
    ? new Promise<ShardStats>(() => { /* never */ })
    : Promise.resolve({ t: 'stats', groups: i, processed: 3 });
  const src: StatusSource = {
    startedAt: Date.now() - 1000,
    ready: true,
    connections: 0,
    registry: { accountCount: 0 },
    counters: { framesIn: 0, framesOut: 0, restarts: 0 },
    shards,
    settings: { data: '/nonexistent', restartMax: 5, restartWindowMs: 60_000 },
    shardStats: () => Promise.all(shards.map((s) => stats(s.index))),
    backup: () => Promise.reject(new Error('no backups here')),
  };
  if (opts.perShard) src.shardStatsOf = stats;
  return src;
}

describe('status server against a stand-in node', () => {
  let srv: StatusServer | undefined;
  afterEach(async () => { await srv?.close(); srv = undefined; });

  const get = async (path: string) => {
    const r = await fetch(`http://127.0.0.1:${srv!.port}${path}`);
    return { status: r.status, json: (await r.json()) as any };
  };

  it('names a stuck worker as unresponsive and still answers, within the stats timeout', async () => {
    srv = await startStatusServer(fakeSource({ stuck: [1], perShard: true }), { port: 0, statsTimeoutMs: 200 });
    const t0 = Date.now();
    const r = await get('/status');
    expect(Date.now() - t0).to.be.below(2000);
    expect(r.status).to.equal(200);
    expect(r.json.unresponsiveWorkers).to.deep.equal([1]);
    expect(r.json.statsComplete).to.equal(false);
    expect(r.json.workers.map((w: any) => w.responsive)).to.deep.equal([true, false, true]);
    expect(r.json.workers[1].groups).to.equal(null);
    expect(r.json.workers[2].groups).to.equal(2);
    expect(r.json.groups.resident).to.equal(2);
    expect(r.json.workers[1].mailboxDepth).to.equal(1);
  });

  it('without per-shard stats, a stuck shard makes every worker unknown but /status and /metrics still answer', async () => {
    srv = await startStatusServer(fakeSource({ stuck: [2], perShard: false }), { port: 0, statsTimeoutMs: 200 });
    const r = await get('/status');
    expect(r.status).to.equal(200);
    expect(r.json.unresponsiveWorkers).to.deep.equal([0, 1, 2]);
    const m = await fetch(`http://127.0.0.1:${srv.port}/metrics`);
    expect(m.status).to.equal(200);
    expect(await m.text()).to.contain('imgc_stats_complete 0');
  });

  it('/readyz is 503 while the node is not ready or a worker is down', async () => {
    const src = fakeSource({ stuck: [], perShard: true });
    (src as { ready: boolean }).ready = false;
    srv = await startStatusServer(src, { port: 0 });
    expect((await get('/readyz')).status).to.equal(503);
    (src as { ready: boolean }).ready = true;
    expect((await get('/readyz')).status).to.equal(200);
    (src.shards[1] as { up: boolean }).up = false;
    const r = await get('/readyz');
    expect(r.status).to.equal(503);
    expect(r.json.workersDown).to.deep.equal([1]);
    expect((await get('/healthz')).status).to.equal(200);
  });

  it('reports the chain watcher, delivery and store state when the node provides them', async () => {
    const src = fakeSource({ stuck: [], perShard: true });
    src.chainState = () => ({ endpoint: 'ws://x', connected: false, lastFinalized: 7, lastProcessed: 7, reconnects: 3, lastError: 'gone' });
    src.deliveryState = () => ({ appended: 5, trimmed: 2, store: { backend: 'lmdb', lastOffset: 12 } });
    src.verificationState = () => ({ enabled: true });
    srv = await startStatusServer(src, { port: 0 });
    const r = await get('/status');
    expect(r.json.chain).to.include({ connected: false, lastFinalized: 7, reconnects: 3 });
    expect(r.json.delivery).to.deep.equal({ appended: 5, trimmed: 2, store: { backend: 'lmdb', lastOffset: 12 } });
    expect(r.json.verification).to.deep.equal({ enabled: true });
  });

  it('binds loopback by default and refuses a port in use', async () => {
    srv = await startStatusServer(fakeSource({ stuck: [], perShard: true }), { port: 0 });
    let err: unknown;
    try { await startStatusServer(fakeSource({ stuck: [], perShard: true }), { port: srv.port }); } catch (e) { err = e; }
    expect(String(err)).to.match(/EADDRINUSE/);
  });
});
