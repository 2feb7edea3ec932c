/**
 * Store micro-benchmark (not a test): `npm run build && node dist/bench/store-append.js [--n 200000]
 * [--turn 100] [--convs 1000] [--rounds 3] [--fsync grouped|always|off] [--top-cache N] [--no-flush]
 * [--no-top-cache-run]`.
 *
 * Appends N records in event-loop turns of `turn` appends, the way the delivery actor does on its
 * hot path: every append is followed by `top` (retention) and `findMid` (the resend check), and
 * every turn ends with one `flush()` (the actor's one afterDurable per turn); the turn's writes
 * commit at its end. Runs the memory backend (the baseline), LMDB (fsync 'grouped' unless told)
 * committing on its writer thread and inline, and LMDB without its top cache, in the same process,
 * `rounds` times interleaved (the machine's noise hits all alike); prints every round and the
 * median records/s of each, LMDB's commits, each as a ratio of the memory backend's median, and
 * per record the CPU of the whole process (every thread: process.cpuUsage) and the time the main
 * thread was busy (its event loop utilization): what moving commits to the writer thread moves.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MemoryStore } from '../src/store/memory/memory-store';
import { LmdbStore, type LmdbWriter } from '../src/store/lmdb/lmdb-store';
import { directConv, type Store } from '../src/store/ports';
import { parseFlags } from './common';

const flags = parseFlags(process.argv.slice(2));
const N = Number(flags.get('n') ?? 200_000);
const TURN = Number(flags.get('turn') ?? 100);
const CONVS = Number(flags.get('convs') ?? 1000);
const FSYNC = (flags.get('fsync') ?? 'grouped') as 'grouped' | 'always' | 'off';
const TOP_CACHE = flags.has('top-cache') ? Number(flags.get('top-cache')) : undefined;
const FLUSH = !flags.has('no-flush');
const ROUNDS = Number(flags.get('rounds') ?? 3);

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Result { name: string; ms: number; perSec: number; commits: number | undefined; cpuUs: number; mainUs: number }

/** Accounts as plain strings of SS58 length: the store does not parse them. */
const accounts = Array.from({ length: 200 }, (_, i) => `5Acct${String(i).padStart(43, '0')}`);
const convs = Array.from({ length: CONVS }, (_, i) => {
  const a = accounts[i % accounts.length]!;
  const b = accounts[(i * 7 + 1) % accounts.length]!;
  return { conv: directConv(a, b === a ? accounts[(i + 1) % accounts.length]! : b), from: a };
});
const head = `{"t":"msg","from":"${accounts[0]}","body":"${'x'.repeat(120)}","to":`;

async function run(name: string, store: Store): Promise<Result> {
  const commits0 = store.stats().commits as number | undefined;
  const flushes: Promise<void>[] = [];
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  let i = 0;
  while (i < N) {
    const end = Math.min(N, i + TURN);
    for (; i < end; i++) {
      const { conv, from } = convs[i % convs.length]!;
      const mid = `m${i}`;
      const e = store.log.append({ conv, at: 1_700_000_000_000 + i, from, mid, head, tail: ',"x":1' });
      const top = store.log.top(conv);
      const found = store.log.findMid(conv, from, mid);
      if (top?.last !== e.offset || found !== e.offset) throw new Error(`${name}: read-your-writes broken at ${i}`);
    }
    if (FLUSH) flushes.push(store.flush());
    await nextTurn();
  }
  await Promise.all(flushes);
  await store.flush();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const commits1 = store.stats().commits as number | undefined;
  return {
    name, ms, perSec: (N / ms) * 1000, commits: commits1 === undefined || commits0 === undefined ? undefined : commits1 - commits0,
    cpuUs: (cpu.user + cpu.system) / N, mainUs: (elu.active * 1000) / N,
  };
}

async function lmdbRun(name: string, topCache: number | undefined, writer: LmdbWriter): Promise<Result> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgc-bench-store-'));
  try {
    const store = LmdbStore.open({ dir, fsync: FSYNC, writer, ...(topCache !== undefined ? { topCache } : {}) });
    const r = await run(name, store);
    await store.close();
    return r;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  say(`store-append: N=${N} records, turns of ${TURN} (append + top + findMid each${FLUSH ? ', one flush per turn' : ''}), ${CONVS} conversations, ${ROUNDS} rounds, node ${process.version}`);
  const series: { name: string; make: () => Promise<Result> }[] = [
    { name: 'memory', make: () => run('memory', new MemoryStore()) },
    { name: `lmdb (fsync ${FSYNC}, writer thread)`, make: () => lmdbRun('', TOP_CACHE, 'thread') },
    { name: `lmdb (fsync ${FSYNC}, inline)`, make: () => lmdbRun('', TOP_CACHE, 'inline') },
  ];
  if (TOP_CACHE === undefined && !flags.has('no-top-cache-run')) {
    series.push({ name: `lmdb (fsync ${FSYNC}, thread, no top cache)`, make: () => lmdbRun('', 0, 'thread') });
  }
  const results = series.map(() => [] as Result[]);
  const turns = Math.ceil(N / TURN);
  const fmt = (name: string, perSec: number, ms: number, commits: number | undefined, ratio: number, r: Result): string => {
    const c = commits === undefined ? '' : `  ${commits} commits (${(commits / turns).toFixed(2)}/turn)`;
    const us = `  ${r.cpuUs.toFixed(2)} µs CPU/record, main thread ${r.mainUs.toFixed(2)} µs`;
    return `${name.padEnd(44)} ${Math.round(perSec).toLocaleString('en-US').padStart(10)} records/s ${ms.toFixed(0).padStart(6)} ms  ${ratio.toFixed(3)} of memory${us}${c}`;
  };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [i, s] of series.entries()) results[i]!.push(await s.make());
    const mem = results[0]![round - 1]!;
    for (const [i, s] of series.entries()) {
      const r = results[i]![round - 1]!;
      say(`  round ${round}  ${fmt(s.name, r.perSec, r.ms, r.commits, r.perSec / mem.perSec, r)}`);
    }
  }
  const memMedian = median(results[0]!.map((r) => r.perSec));
  say(`median of ${ROUNDS}:`);
  for (const [i, s] of series.entries()) {
    const rs = results[i]!;
    const perSec = median(rs.map((r) => r.perSec));
    const mid: Result = { ...rs.at(-1)!, cpuUs: median(rs.map((r) => r.cpuUs)), mainUs: median(rs.map((r) => r.mainUs)) };
    say(`  ${fmt(s.name, perSec, (N / perSec) * 1000, rs.at(-1)!.commits, perSec / memMedian, mid)}`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e instanceof Error ? e.stack : e)}\n`);
  process.exit(1);
});
