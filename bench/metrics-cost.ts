/**
 * Cost of the prom-client instruments (not a test): `npm run build && node dist/bench/metrics-cost.js [--n 1000000]`.
 *
 * Times N `observe` calls on a histogram without labels (imgc_store_flush_seconds' kind), N on one
 * with a label (imgc_signin_seconds' kind), N `inc` on a labelled counter (imgc_errors_total's kind),
 * N `performance.now()` pairs (what each observation costs to measure), and a full /metrics render
 * (a status snapshot of 8 workers merged with the live instruments and the default process and
 * Node figures). Each is run 3 times; the median is printed. The rule of the instruments: at most
 * one observation per request or per store turn, and only if one costs less than ~1 µs.
 */
import { performance } from 'node:perf_hooks';
import { Counter, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics, instruments } from '../src/status/instruments';
import { renderMetrics } from '../src/status/metrics';
import type { StatusSnapshot } from '../src/status/snapshot';
import { parseFlags } from './common';

const flags = parseFlags(process.argv.slice(2));
const N = Number(flags.get('n') ?? 1_000_000);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(label: string, n: number, body: () => void): void {
  const runs: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    body();
    runs.push(performance.now() - t0);
  }
  const ms = median(runs);
  process.stdout.write(`${label.padEnd(44)} ${(ms).toFixed(1).padStart(8)} ms for ${n}  = ${((ms * 1e6) / n).toFixed(1).padStart(7)} ns each\n`);
}

function snapshot(): StatusSnapshot {
  const workers = Array.from({ length: 8 }, (_, index) => ({ index, threadId: index + 1, up: true, startedAt: new Date().toISOString(), mailboxDepth: 0, responsive: true, groups: 100, processed: 1000 }));
  return {
    service: 'imgc', version: '0.1.0', nodeVersion: process.version, pid: process.pid, time: new Date().toISOString(),
    startedAt: new Date().toISOString(), uptimeSeconds: 100, ready: true, connections: 1000, accounts: 900,
    groups: { resident: 800 },
    delivery: { appended: 1, duplicates: 0, pushed: 1, backlogFrames: 0, syncing: 0, store: { backend: 'lmdb', lastOffset: 9, bytes: 1e6, commits: 5, pendingWrites: 0 } },
    messages: { inTotal: 100, outTotal: 200, inPerSecond: 1.5, outPerSecond: 3, windowSeconds: 10 },
    workers, unresponsiveWorkers: [], statsComplete: true,
    restarts: { total: 0, max: 5, windowMs: 60_000 }, slowSocketsDropped: 0, refused: { badFrames: 0, rateLimited: 0, signIns: 0 },
    chain: null, verification: null,
    process: { rssBytes: 1, heapUsedBytes: 2, eventLoopDelayMs: { p50: 1, p99: 5, max: 9 } },
  } as StatusSnapshot;
}

async function main(): Promise<void> {
  const reg = new Registry();
  const plain = new Histogram({ name: 'bench_plain_seconds', help: 'x', buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [reg] });
  const labelled = new Histogram({ name: 'bench_labelled_seconds', help: 'x', labelNames: ['method'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [reg] });
  const errors = new Counter({ name: 'bench_errors_total', help: 'x', labelNames: ['code'], registers: [reg] });
  const values = Float64Array.from({ length: 1024 }, () => Math.random() * 0.05);

  time('histogram.observe (no labels)', N, () => { for (let i = 0; i < N; i++) plain.observe(values[i & 1023]!); });
  time('histogram.observe({ method })', N, () => { for (let i = 0; i < N; i++) labelled.observe({ method: 'sig' }, values[i & 1023]!); });
  time('counter.inc({ code })', N, () => { for (let i = 0; i < N; i++) errors.inc({ code: 44003 }); });
  let sink = 0;
  time('performance.now() x2 (start, end)', N, () => { for (let i = 0; i < N; i++) { const t = performance.now(); sink += performance.now() - t; } });
  if (sink < 0) process.stdout.write('');

  collectProcessMetrics();
  const snap = snapshot();
  await renderMetrics(snap, [instruments]); // warm
  const runs: number[] = [];
  let bytes = 0;
  for (let r = 0; r < 20; r++) {
    const t0 = performance.now();
    bytes = (await renderMetrics(snap, [instruments])).length;
    runs.push(performance.now() - t0);
  }
  process.stdout.write(`${'/metrics render (8 workers, defaults)'.padEnd(44)} ${median(runs).toFixed(2).padStart(8)} ms median of 20, ${bytes} bytes\n`);
}

main().catch((err: unknown) => { process.stderr.write(`${String(err)}\n`); process.exit(1); });
