/**
 * A server with many stored messages: `npm run bench:stored [-- flags]`.
 *
 * 1. Builds a data directory directly through the store (`LmdbStore`, fsync off), in the exact shape
 *    the delivery actor writes: direct messages (`directConv` + `directTemplate`, no `mid`), appended
 *    round-robin over the conversations so that offsets interleave as live traffic would, and both
 *    accounts of each conversation joined at offset 0 (as `Delivery.ensureMembers` does).
 *    - regular conversations: pairs of accounts, each account in 10 conversations;
 *    - probe accounts: each has 10 conversations, with 10 senders, holding `--backlog` messages for it
 *      in all (never signed in: everything is its backlog at sign-in).
 * 2. Starts an empty server and then the server on the built directory, one after the other, and
 *    measures on each: start time (spawn → first WebSocket frame), RssAnon / RssFile after start, the
 *    sign-in backlog latency of the probe accounts (`active` sent → last backlog frame), a batch of
 *    sign-ins of regular accounts (each reads its backlog), `history` pages (limit 50) over many
 *    conversations (p50/p99), RssAnon / RssFile after all that, and a restart after a graceful stop.
 *
 *   node dist/bench/stored.js [--messages 2000000] [--conversations 100000] [--probes 20] [--backlog 1000]
 *       [--signins 2000] [--history 2000] [--data DIR (reuse a built directory)] [--keep] [--write]
 *
 * Pages of the memory-mapped database file count as RssFile (shared, clean, droppable by the
 * kernel); what the server itself holds is RssAnon. The target is RssAnon within 1.5× of an
 * empty server's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { LmdbStore } from '../src/store/lmdb/lmdb-store';
import { directConv } from '../src/store/ports';
import { directTemplate } from '../src/protocol/frames';
import { closeAll, signIn, type BenchClient } from './clients';
import { dirBytes, flagNum, now, openAccount, parseFlags, sleep } from './common';
import { SERVICE_MAIN, track } from './server';
import { Latency, fmt } from './stats';
import WebSocket from 'ws';

const flags = parseFlags(process.argv.slice(2));
// The size is 10,000,000 messages; building that here took longer than 10 minutes (about
// 15,000 appends/s on 2 shared cores), so the default is smaller: pass --messages 10000000 for it.
const MESSAGES = flagNum(flags, 'messages', 2_000_000);
const CONVERSATIONS = flagNum(flags, 'conversations', 100_000);
const PROBES = flagNum(flags, 'probes', 20);
const BACKLOG = flagNum(flags, 'backlog', 1000);
const SIGNINS = flagNum(flags, 'signins', 2000);
const HISTORY = flagNum(flags, 'history', 2000);
const PER_ACCOUNT = 10;
const BATCH = 20_000;
const LABEL = 'stored';

const say = (s: string): void => { process.stdout.write(`${s}\n`); };

// ---- the data set ----

interface Conv { a: string; b: string; n: number; probe: boolean }

/** Regular accounts: each in PER_ACCOUNT conversations (a with a+1 … a+5, and so as b of a-1 … a-5). */
function regularAccounts(convs: number): number {
  return Math.max(2 * (PER_ACCOUNT / 2) + 1, Math.ceil(convs / (PER_ACCOUNT / 2)));
}

function layout(): { convs: Conv[]; regular: string[]; probes: string[] } {
  const probeConvs = PROBES * PER_ACCOUNT;
  const regularConvs = CONVERSATIONS - probeConvs;
  if (regularConvs <= 0) throw new Error('--conversations must exceed --probes × 10');
  const probeMsgs = PROBES * BACKLOG;
  const regularMsgs = MESSAGES - probeMsgs;
  if (regularMsgs < regularConvs) throw new Error('--messages too small for the conversations and the probes\' backlog');
  const nAcc = regularAccounts(regularConvs);
  const regular = Array.from({ length: nAcc }, (_, i) => openAccount(`${LABEL}/acc`, i));
  const convs: Conv[] = [];
  const base = Math.floor(regularMsgs / regularConvs);
  let extra = regularMsgs - base * regularConvs;
  for (let i = 0; i < regularConvs; i++) {
    const a = i % nAcc;
    const k = Math.floor(i / nAcc);
    const b = (a + k + 1) % nAcc;
    convs.push({ a: regular[a]!, b: regular[b]!, n: base + (extra-- > 0 ? 1 : 0), probe: false });
  }
  const probes = Array.from({ length: PROBES }, (_, j) => openAccount(`${LABEL}/probe`, j));
  for (let j = 0; j < PROBES; j++) {
    const per = Math.floor(BACKLOG / PER_ACCOUNT);
    for (let s = 0; s < PER_ACCOUNT; s++) {
      const n = per + (s < BACKLOG - per * PER_ACCOUNT ? 1 : 0);
      convs.push({ a: openAccount(`${LABEL}/probe-sender/${j}`, s), b: probes[j]!, n, probe: true });
    }
  }
  return { convs, regular, probes };
}

/** Writes the data set through the store, as the delivery actor would have. */
async function build(dir: string, convs: Conv[]): Promise<{ ms: number; records: number }> {
  const t0 = now();
  const store = LmdbStore.open({ dir, fsync: 'off' });
  let ops = 0;
  const tick = async (): Promise<void> => {
    if (++ops % BATCH === 0) await store.flush();
  };
  // Both accounts of a direct conversation are members from its first message on.
  for (const c of convs) {
    const conv = directConv(c.a, c.b);
    store.positions.join(c.a, conv, 0);
    store.positions.join(c.b, conv, 0);
    await tick();
  }
  const maxN = convs.reduce((m, c) => Math.max(m, c.n), 0);
  const ids = convs.map((c) => directConv(c.a, c.b));
  let records = 0;
  let nextReport = 1_000_000;
  const at = Date.now();
  for (let r = 0; r < maxN; r++) {
    for (let i = 0; i < convs.length; i++) {
      const c = convs[i]!;
      if (r >= c.n) continue;
      // Probe conversations: the sender writes and the probe reads; regular ones take turns.
      const from = c.probe || r % 2 === 0 ? c.a : c.b;
      const tpl = directTemplate(from, JSON.stringify(`message ${r} of an ordinary conversation, kept while away`));
      store.log.append({ conv: ids[i]!, at, from, head: tpl.head, tail: tpl.tail });
      records++;
      await tick();
      if (records >= nextReport) {
        nextReport += 1_000_000;
        const s = (now() - t0) / 1000;
        say(`  ${fmt(records)} records in ${s.toFixed(0)} s (${fmt(records / s)}/s)`);
      }
    }
  }
  await store.close();
  return { ms: now() - t0, records };
}

// ---- the server ----

interface Mem { anon: number; file: number; shmem: number; hwm: number; heap: number }

/** V8 heap in use on the server's main thread, from its status endpoint (NaN when unreachable). */
function heapUsed(statusPort: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: statusPort, path: '/metrics', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve(Number(/^imgc_process_heap_used_bytes (\d+)/m.exec(body)?.[1] ?? NaN)));
    });
    req.on('error', () => resolve(NaN));
    req.on('timeout', () => { req.destroy(); resolve(NaN); });
  });
}

async function memOf(s: Server): Promise<Mem> {
  const heap = await heapUsed(s.statusPort);
  const t = fs.readFileSync(`/proc/${s.pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(t)?.[1] ?? NaN) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem'), hwm: kb('VmHWM'), heap };
}

interface Server { child: ChildProcess; url: string; pid: number; startMs: number; statusPort: number }

let port = 22000 + (process.pid % 40) * 50;

function firstFrame(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const t = setTimeout(() => { ws.terminate(); resolve(false); }, 2000);
    ws.once('message', () => { clearTimeout(t); ws.terminate(); resolve(true); });
    ws.once('error', () => { clearTimeout(t); resolve(false); });
  });
}

async function start(data: string, logFile: string): Promise<Server> {
  const p = port++;
  const statusPort = p + 5000;
  const url = `ws://127.0.0.1:${p}`;
  const log = fs.openSync(logFile, 'a');
  const t0 = now();
  const child = spawn(process.execPath, [SERVICE_MAIN, '--port', String(p), '--host', '127.0.0.1', '--auth', 'open',
    '--status-port', String(statusPort), '--status-host', '127.0.0.1', '--workers', '2', '--data', data, '--shutdown-ms', '60000'],
  { stdio: ['ignore', log, log], env: { ...process.env, IMGC_LOG_LEVEL: 'warn' } });
  fs.closeSync(log);
  track(child);
  const deadline = t0 + 600_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${fs.readFileSync(logFile, 'utf8').slice(-500)}`);
    if (await firstFrame(url)) break;
    if (now() > deadline) { child.kill('SIGKILL'); throw new Error('server not ready in 10 minutes'); }
    await sleep(20);
  }
  return { child, url, pid: child.pid!, startMs: now() - t0, statusPort };
}

async function stop(s: Server): Promise<number> {
  const t0 = now();
  if (s.child.exitCode !== null || s.child.signalCode !== null) return 0;
  const gone = new Promise<void>((resolve) => s.child.once('exit', () => resolve()));
  s.child.kill('SIGTERM');
  await gone;
  return now() - t0;
}

// ---- what is measured on each server ----

const isMessage = (d: Buffer): boolean => d.indexOf('"type":"message"') >= 0;

/** Signs in `acc` and resolves when `expect` message frames have arrived (or 30 s passed). */
async function backlogOf(url: string, acc: string, expect: number): Promise<{ total: number; first: number; got: number; client: BenchClient }> {
  let got = 0;
  let tFirst = NaN;
  let tLast = NaN;
  const c = await signIn(url, acc, (_c, d) => {
    if (!isMessage(d)) return;
    got++;
    tLast = now();
    if (got === 1) tFirst = tLast;
  });
  const end = now() + 30_000;
  // With nothing expected, wait a little for frames that should not come.
  if (expect === 0) await sleep(100);
  while (got < expect && now() < end) await sleep(1);
  return { total: got > 0 ? tLast - c.tActive : c.tWelcome - c.tActive, first: got > 0 ? tFirst - c.tActive : NaN, got, client: c };
}

interface Measured {
  startMs: number;
  memStart: Mem;
  probeTotal: Latency;
  probeFirst: Latency;
  probeFrames: number;
  signinMs: number;
  signinFrames: number;
  signinFailed: number;
  history: Latency;
  historyMsgs: number;
  historyErrors: number;
  memProbes: Mem;
  memSignins: Mem;
  memAfter: Mem;
  memIdle: Mem;
  stopMs: number;
  restartMs: number;
  memRestart: Mem;
}

async function measure(data: string, logFile: string, expectBacklog: number, lay: ReturnType<typeof layout>): Promise<Measured> {
  const s = await start(data, logFile);
  await sleep(2000);
  const memStart = await memOf(s);
  say(`  started in ${fmt(s.startMs)} ms; RssAnon ${fmt(memStart.anon / 2 ** 20)} MiB, RssFile ${fmt(memStart.file / 2 ** 20)} MiB`);

  // Probe accounts, one at a time: active → last backlog frame.
  const probeTotal = new Latency();
  const probeFirst = new Latency();
  let probeFrames = 0;
  for (const p of lay.probes) {
    const r = await backlogOf(s.url, p, expectBacklog);
    probeTotal.add(r.total);
    if (Number.isFinite(r.first)) probeFirst.add(r.first);
    probeFrames += r.got;
    await closeAll([r.client]);
  }
  await sleep(500);
  const memProbes = await memOf(s);
  say(`  probes: ${fmt(probeFrames)} backlog frames, active→last p50 ${fmt(probeTotal.summary().p50)} ms`);

  // Regular accounts, 50 at a time, each reading its whole backlog (about 10 × messages per conversation / 2).
  const n = Math.min(SIGNINS, lay.regular.length);
  const accs = lay.regular.slice(0, n);
  const held: BenchClient[] = [];
  let frames = 0;
  let failed = 0;
  const t0 = now();
  let next = 0;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next < accs.length) {
      const acc = accs[next++]!;
      try {
        const c = await signIn(s.url, acc, (_c, d) => { if (isMessage(d)) frames++; });
        held.push(c);
      } catch {
        failed++;
      }
    }
  }));
  // Let the backlogs drain: wait until the frame count stops moving.
  let last = -1;
  while (frames !== last) { last = frames; await sleep(500); }
  const signinMs = now() - t0;
  const memSignins = await memOf(s);
  say(`  ${fmt(held.length)} sign-ins with ${fmt(frames)} backlog frames in ${fmt(signinMs)} ms`);

  // History pages of limit 50 over many conversations, one request at a time.
  const history = new Latency();
  let historyMsgs = 0;
  let historyErrors = 0;
  const idx = new Map(lay.regular.map((a, i) => [a, i]));
  const peersOf = new Map<string, string[]>();
  for (const c of lay.convs) {
    if (c.probe) continue;
    for (const [x, y] of [[c.a, c.b], [c.b, c.a]] as const) {
      if (!idx.has(x)) continue;
      const l = peersOf.get(x) ?? [];
      l.push(y);
      peersOf.set(x, l);
    }
  }
  let rnd = 12345;
  const rand = (k: number): number => { rnd = (rnd * 1103515245 + 12345) & 0x7fffffff; return rnd % k; };
  const live = held.filter((c) => c.open);
  for (let q = 0; q < HISTORY && live.length > 0; q++) {
    const c = live[rand(live.length)]!;
    const peers = peersOf.get(c.acc) ?? [];
    if (peers.length === 0) continue;
    const withAcc = peers[rand(peers.length)]!;
    const key = `h${q}`;
    const t = now();
    const answer = await new Promise<Buffer | undefined>((resolve) => {
      const prev = c.handler;
      const timer = setTimeout(() => { c.handler = prev; resolve(undefined); }, 10_000);
      c.handler = (cc, d) => {
        if (d.indexOf(`"callback":"${key}"`) >= 0 || (d.indexOf('"type":"error"') >= 0 && d.indexOf(key) >= 0)) {
          clearTimeout(timer);
          c.handler = prev;
          resolve(d);
          return;
        }
        prev?.(cc, d);
      };
      // Half the pages are the newest, half page back from the middle of what the server holds.
      const before = q % 2 === 1 ? { before: 1 + rand(Math.max(1, MESSAGES)) } : {};
      c.send({ cat: 'chat', act: 'history', with: withAcc, limit: 50, ...before, callback: key });
    });
    if (answer === undefined || answer.indexOf('"type":"error"') >= 0) { historyErrors++; continue; }
    history.add(now() - t);
    let k = answer.indexOf('"type":"message"');
    while (k >= 0) { historyMsgs++; k = answer.indexOf('"type":"message"', k + 1); }
  }
  say(`  ${fmt(history.count)} history pages (${fmt(historyMsgs)} messages), p50 ${fmt(history.summary().p50)} ms, p99 ${fmt(history.summary().p99)} ms`);
  await sleep(1000);
  const memAfter = await memOf(s);
  await closeAll(held);
  // Connections closed, nothing to do for a while: what the server keeps.
  await sleep(5000);
  const memIdle = await memOf(s);
  say(`  RssAnon MiB: start ${mib(memStart.anon)}, after probes ${mib(memProbes.anon)}, after sign-ins ${mib(memSignins.anon)}, after history ${mib(memAfter.anon)}, idle ${mib(memIdle.anon)}`);
  say(`  V8 heap used MiB: start ${mib(memStart.heap)}, after probes ${mib(memProbes.heap)}, after sign-ins ${mib(memSignins.heap)}, after history ${mib(memAfter.heap)}, idle ${mib(memIdle.heap)}`);
  const stopMs = await stop(s);
  const again = await start(data, logFile);
  await sleep(2000);
  const memRestart = await memOf(again);
  await stop(again);
  return {
    startMs: s.startMs, memStart, probeTotal, probeFirst, probeFrames, signinMs, signinFrames: frames, signinFailed: failed + (n - held.length - failed),
    history, historyMsgs, historyErrors, memProbes, memSignins, memAfter, memIdle, stopMs, restartMs: again.startMs, memRestart,
  };
}

// ---- report ----

function writeSection(markdown: string): void {
  const file = path.resolve(__dirname, '..', '..', 'docs', 'benchmarks.md');
  const begin = '<!-- stored:begin -->';
  const end = '<!-- stored:end -->';
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# IMGC benchmarks\n';
  const block = `${begin}\n${markdown}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  fs.writeFileSync(file, i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n${block}\n`);
  say(`wrote the stored section of ${path.relative(process.cwd(), file)}`);
}

const mib = (b: number): string => fmt(b / 2 ** 20);
const ratio = (a: number, b: number): string => (Number.isFinite(a / b) && b > 0 ? `${(a / b).toFixed(2)}×` : '–');

async function main(): Promise<void> {
  const lay = layout();
  const given = flags.get('data');
  if (given !== undefined && fs.existsSync(path.join(given, 'store'))) {
    // An earlier measurement moved the delivered offsets of the accounts it signed in: put them back
    // to none (as built), so that their backlogs are whole again.
    const st = LmdbStore.open({ dir: given, fsync: 'off' });
    const n = Math.min(SIGNINS, lay.regular.length);
    for (const acc of [...lay.probes, ...lay.regular.slice(0, n)]) st.positions.set(acc, { delivered: 0, acked: 0, ackMode: false });
    await st.close();
    say(`reusing ${given}: positions of the ${PROBES + n} accounts signed in here reset to 0`);
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgc-stored-'));
  const data = given ?? path.join(root, 'data');
  const empty = path.join(root, 'empty');
  fs.mkdirSync(empty, { recursive: true });
  const logFile = path.join(root, 'server.log');
  let buildLine = `reused ${data}`;
  try {
    if (given === undefined || !fs.existsSync(path.join(data, 'store'))) {
      say(`building ${fmt(MESSAGES)} messages in ${fmt(CONVERSATIONS)} conversations (${fmt(lay.regular.length)} regular accounts, ${PROBES} probes with ${fmt(BACKLOG)} each) in ${data}`);
      const b = await build(data, lay.convs);
      buildLine = `built in ${(b.ms / 1000).toFixed(0)} s (${fmt(b.records / (b.ms / 1000))} records/s, fsync off)`;
      say(`  ${fmt(b.records)} records ${buildLine}`);
    }
    const bytes = dirBytes(data);
    say(`data directory: ${mib(bytes)} MiB`);

    say('empty server:');
    const e = await measure(empty, logFile, 0, lay);
    say('server with the stored messages:');
    const f = await measure(data, logFile, BACKLOG, lay);

    const perConv = Math.round((MESSAGES - PROBES * BACKLOG) / (CONVERSATIONS - PROBES * PER_ACCOUNT));
    const rows: [string, string, string, string][] = [];
    const row = (name: string, ev: number, fv: number, unit: (v: number) => string): void => { rows.push([name, unit(ev), unit(fv), ratio(fv, ev)]); };
    const ms = (v: number): string => fmt(v);
    row('start, spawn → first frame (ms)', e.startMs, f.startMs, ms);
    row('RssAnon after start (MiB)', e.memStart.anon, f.memStart.anon, mib);
    row('RssFile after start (MiB)', e.memStart.file, f.memStart.file, mib);
    row(`sign-in backlog, active → last frame, p50 (ms; ${fmt(BACKLOG)} frames stored)`, e.probeTotal.summary().p50, f.probeTotal.summary().p50, ms);
    row('sign-in backlog, active → last frame, max (ms)', e.probeTotal.summary().max, f.probeTotal.summary().max, ms);
    row('sign-in backlog, active → first frame, p50 (ms)', e.probeFirst.summary().p50, f.probeFirst.summary().p50, ms);
    row('backlog frames received by the probes', e.probeFrames, f.probeFrames, fmt);
    row(`${fmt(SIGNINS)} sign-ins (50 at a time) with their backlogs: time to drain (ms)`, e.signinMs, f.signinMs, ms);
    row('  backlog frames received', e.signinFrames, f.signinFrames, fmt);
    row('history page (limit 50) p50 (ms)', e.history.summary().p50, f.history.summary().p50, ms);
    row('history page (limit 50) p99 (ms)', e.history.summary().p99, f.history.summary().p99, ms);
    row('  messages in the pages', e.historyMsgs, f.historyMsgs, fmt);
    row('RssAnon after the probes\' sign-ins (MiB)', e.memProbes.anon, f.memProbes.anon, mib);
    row(`RssAnon after the ${fmt(SIGNINS)} sign-ins, backlogs drained, connections open (MiB)`, e.memSignins.anon, f.memSignins.anon, mib);
    row('RssAnon after sign-ins and history (MiB)', e.memAfter.anon, f.memAfter.anon, mib);
    row('RssFile after sign-ins and history (MiB)', e.memAfter.file, f.memAfter.file, mib);
    row('RssAnon 5 s after the connections closed (MiB)', e.memIdle.anon, f.memIdle.anon, mib);
    row('RssFile 5 s after the connections closed (MiB)', e.memIdle.file, f.memIdle.file, mib);
    row('V8 heap used (main thread) after start (MiB)', e.memStart.heap, f.memStart.heap, mib);
    row('V8 heap used (main thread) after sign-ins and history (MiB)', e.memAfter.heap, f.memAfter.heap, mib);
    row('V8 heap used (main thread) 5 s after the connections closed (MiB)', e.memIdle.heap, f.memIdle.heap, mib);
    row('peak RSS, VmHWM (MiB)', e.memAfter.hwm, f.memAfter.hwm, mib);
    row('graceful stop (ms)', e.stopMs, f.stopMs, ms);
    row('restart, spawn → first frame (ms)', e.restartMs, f.restartMs, ms);
    row('RssAnon after restart (MiB)', e.memRestart.anon, f.memRestart.anon, mib);
    row('RssFile after restart (MiB)', e.memRestart.file, f.memRestart.file, mib);
    const problems: string[] = [];
    if (f.probeFrames !== PROBES * BACKLOG) problems.push(`probes received ${fmt(f.probeFrames)} backlog frames of ${fmt(PROBES * BACKLOG)} stored for them`);
    if (f.historyErrors > 0 || e.historyErrors > 0) problems.push(`history errors or timeouts: empty ${e.historyErrors}, stored ${f.historyErrors}`);
    if (f.signinFailed > 0 || e.signinFailed > 0) problems.push(`failed sign-ins: empty ${e.signinFailed}, stored ${f.signinFailed}`);
    const anonRatio = f.memAfter.anon / e.memAfter.anon;
    const idleRatio = f.memIdle.anon / e.memIdle.anon;

    const cmd = `node dist/bench/stored.js ${process.argv.slice(2).filter((a, i, all) => a !== '--data' && all[i - 1] !== '--data' && a !== '--keep').join(' ')}`.trim();
    const md = [
      '## A server with many stored messages',
      '',
      `${fmt(MESSAGES)} direct messages in ${fmt(CONVERSATIONS)} conversations (about ${fmt(perConv)} each; ${fmt(lay.regular.length)} accounts in 10`,
      `conversations each, plus ${PROBES} probe accounts with ${fmt(BACKLOG)} messages waiting for each), written through \`LmdbStore\``,
      'in the shape the delivery actor writes (one record per message in its conversation\'s log, both accounts joined),',
      `appended round-robin over the conversations; ${buildLine}; ${mib(bytes)} MiB on disk. An empty server and the`,
      'server on that directory are measured one after the other in the same run, with the same requests (`--workers 2`,',
      '`--auth open`, fsync grouped); the page cache was warm (the directory had just been written).',
      '',
      '| figure | empty server | with the stored messages | stored / empty |',
      '|---|---:|---:|---:|',
      ...rows.map((r) => `| ${r.join(' | ')} |`),
      '',
      `- RssAnon (the server's own memory) with the stored messages is **${anonRatio.toFixed(2)}× the empty server's** after the`,
      `  sign-ins and history (target ≤ 1.5×: ${anonRatio <= 1.5 ? 'met' : 'NOT met'}), ${idleRatio.toFixed(2)}× once the connections closed, and`,
      `  ${(f.memStart.anon / e.memStart.anon).toFixed(2)}× after start. The empty server delivered no backlog: part of the difference is the work of`,
      `  delivering ${fmt(f.signinFrames + f.probeFrames)} backlog frames, not the stored data. RssFile is pages of the memory-mapped database file: shared,`,
      '  clean, dropped by the kernel under pressure.',
      '- Sign-in backlog: each probe account signs in alone; the time runs from sending `active` to the last of its',
      '  backlog frames (the empty server sends none: its figure is active → Welcome).',
      '- History: requests `{"act":"history","with":peer,"limit":50}`, alternately the newest page and `before` a random',
      '  offset, one at a time over random conversations of the signed-in accounts; time from send to the answer.',
      ...problems.map((p) => `- Problem seen: ${p}.`),
      '',
      `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, node ${process.version}, ${new Date().toISOString()}. Reproduce:`,
      `\`npm run build && ${cmd}\` (flags \`--messages N --conversations C --probes P --backlog B --signins S --history H\`,`,
      '`--data DIR --keep` to build once and measure again).',
    ].join('\n');
    say('');
    say(md);
    if (flags.has('write')) writeSection(md);
  } finally {
    if (!flags.has('keep')) {
      fs.rmSync(root, { recursive: true, force: true });
    } else {
      say(`kept ${root} (data in ${data})`);
    }
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
  process.exit(1);
});
