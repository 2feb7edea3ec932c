/**
 * The reconnect storm, agent side (runs inside a load-generator process, driven by bench/run.ts
 * `--scenario storm`): N sr25519 clients sign in with `sig` and chat in pairs at a modest open-loop
 * rate; the driver restarts the server (SIGTERM, then the same build on the same port and data
 * directory, as a deploy would); every client sees its socket close and reconnects at once with
 * exponential backoff and full jitter, showing its resume token (`useResume`) or signing again.
 *
 * Phases, each one IPC call: `stormSetup` (sign in, start chatting), `stormArm` (the quiet window
 * ends; closes from now on are the storm), `stormWait` (until every client is back in or the
 * deadline, then a short drain; returns the figures).
 *
 * With `waiting` (the backlog variant, `--waiting N`): at setup every account enters ack mode and gets
 * N messages, from 16 different senders, that it never acknowledges, so after the restart every
 * reconnect reads N records of 16 conversations (the most a backlog buffers: 16 × 64 = 1,024 records)
 * at once; `stormWait` then also waits for every backlog to arrive.
 *
 * Chat: client 2k and 2k+1 are partners. Every 10 ms the due messages go out round-robin over the
 * senders, skipping a sender whose partner or itself is not signed in (so that no latency includes a
 * stored message waiting for a reconnect). Each message is stamped with its send time and classed by
 * it: quiet (setup done → arm), storm (first close seen → last client back in), or ignored.
 */
import { Keyring } from '@polkadot/keyring';
import { stringToU8a, u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { createHash } from 'node:crypto';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { counters, readMark, resetCounters, signIn, signInMany, type BenchClient, type Signer } from './clients';
import { now, SelfCpu, sleep } from './common';
import { Latency, type RunResult } from './stats';

export interface StormSetupArgs {
  url: string;
  serverPid: number;
  label: string;
  clients: number;
  /** Chat messages per second over all pairs. */
  rate: number;
  /** Reconnect with the resume token (true) or with `sig` only (false). */
  useResume: boolean;
  /** Full-jitter exponential backoff: attempt k waits uniform(0, min(cap, base × 2^k)) ms. */
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Reconnect with neither token nor signature (the floor, which checks neither). */
  plain?: boolean;
  /** Sign-in timeout of one reconnect attempt. */
  attemptTimeoutMs: number;
  /** Messages waiting (unacknowledged) for every account at the restart; 0 or absent: none. */
  waiting?: number;
}

interface State {
  a: StormSetupArgs;
  accs: string[];
  signers: Signer[];
  tokens: (string | undefined)[];
  clients: (BenchClient | undefined)[];
  armed: boolean;
  tArm: number;
  tDown: number;
  /** now() when each client got back in after the restart (NaN: not yet). */
  tBack: number[];
  attempts: number[];
  back: number;
  closesArmed: number;
  closesUnarmed: number;
  refused: number;
  http503: number;
  resets: number;
  deadlineCloses: number;
  attemptErrors: number;
  attemptErrorSamples: string[];
  quietStart: number;
  sent: { quiet: number; storm: number };
  got: { quiet: number; storm: number };
  quiet: Latency;
  storm: Latency;
  skipped: number;
  timer: NodeJS.Timeout | undefined;
  rr: number;
  due: number;
  t0: number;
  self: SelfCpu;
  /** The load generator's own event-loop delay over the quiet window and over the storm: its share of the latency. */
  loopQuiet: IntervalHistogram;
  loopStorm: IntervalHistogram;
  /** Waiting-message frames received: at setup (live), and after the restart (the backlogs). */
  waitingLive: number;
  waitingBack: number;
  /** now() when the last backlog frame arrived. */
  tBacklogs: number;
}

let st: State | undefined;

function seedOf(label: string, i: number): Uint8Array {
  return createHash('sha256').update(`imgc-bench-storm/${label}/${i}`).digest();
}

function onFrame(_c: BenchClient, data: Buffer): void {
  const s = st;
  if (!s) return;
  const m = readMark(data);
  if (!m) {
    if (data.includes(WAITING_MARK)) countWaiting(s);
    return;
  }
  const at = m[0];
  const lat = now() - at;
  if (at >= s.quietStart && at < s.tArm) {
    s.got.quiet++;
    s.quiet.add(lat);
  } else if (s.armed && at >= s.tDown) {
    s.got.storm++;
    s.storm.add(lat);
  }
}

/** The `msg` of a waiting message: `{"w":r}`. */
const WAITING_MARK = Buffer.from('"msg":{"w":');

function countWaiting(s: State): void {
  if (!s.armed) s.waitingLive++;
  else {
    s.waitingBack++;
    s.tBacklogs = now();
  }
}

/** Senders of the waiting messages of one account: its backlog reads this many conversations. */
const WAITING_SPREAD = 16;

/**
 * Every account enters ack mode (an `ack` of 0), then gets `n` messages from WAITING_SPREAD others
 * that it never acknowledges: at its next sign-in all `n` are its backlog. Sent in rounds, at most
 * `window` in flight, until each arrived live.
 */
async function loadWaiting(s: State, n: number): Promise<void> {
  const live = s.clients.filter((c): c is BenchClient => c !== undefined);
  if (live.length !== s.accs.length) throw new Error('waiting messages: every client must be signed in');
  for (const c of live) c.sendRaw('{"act":"ack","seq":0');
  const senders = live;
  const total = senders.length * n;
  const to = (i: number, r: number): string => s.accs[(i + 1 + (r % WAITING_SPREAD)) % s.accs.length]!;
  const window = 20_000;
  let sent = 0;
  const deadline = now() + 600_000;
  for (let r = 0; r < n; r++) {
    for (const c of senders) {
      while (sent - s.waitingLive >= window && now() < deadline) await sleep(5);
      c.sendRaw(`{"cat":"chat","act":"chat","to":${JSON.stringify(to(c.idx, r))},"msg":{"w":${r}}`);
      sent++;
    }
  }
  while (s.waitingLive < total && now() < deadline) await sleep(20);
  if (s.waitingLive < total) throw new Error(`waiting messages: ${s.waitingLive} of ${total} arrived`);
}

function attach(s: State, i: number, c: BenchClient): void {
  c.idx = i;
  s.clients[i] = c;
  if (c.token !== undefined) s.tokens[i] = c.token;
  c.ws.on('close', () => {
    if (c.closing) return;
    if (s.clients[i] === c) s.clients[i] = undefined;
    if (!s.armed) {
      s.closesUnarmed++;
      return;
    }
    s.closesArmed++;
    if (!Number.isFinite(s.tDown)) s.tDown = now();
    reconnect(s, i, 0);
  });
}

function reconnect(s: State, i: number, attempt: number): void {
  const wait = Math.random() * Math.min(s.a.backoffCapMs, s.a.backoffBaseMs * 2 ** attempt);
  setTimeout(() => {
    if (st !== s) return;
    s.attempts[i]++;
    signIn(s.a.url, s.accs[i], onFrame, s.a.plain ? undefined : s.signers[i], s.a.attemptTimeoutMs, s.a.useResume ? s.tokens[i] : undefined).then((c) => {
      if (st !== s) {
        c.close();
        return;
      }
      attach(s, i, c);
      if (!Number.isFinite(s.tBack[i])) {
        s.tBack[i] = now();
        s.back++;
      }
    }, (e: Error) => {
      const msg = e.message;
      if (/ECONNREFUSED/.test(msg)) s.refused++;
      else if (/503/.test(msg)) s.http503++;
      // A connect reset: the old server closing its listener with connections not yet accepted, or an
      // accept queue overflowing under thousands of simultaneous SYNs. Retried like a refusal.
      else if (/ECONNRESET|socket hang up/.test(msg)) s.resets++;
      else if (/\(4008\)/.test(msg)) s.deadlineCloses++;
      else {
        s.attemptErrors++;
        if (s.attemptErrorSamples.length < 3) s.attemptErrorSamples.push(msg.slice(0, 200));
      }
      reconnect(s, i, attempt + 1);
    });
  }, wait);
}

function tick(s: State): void {
  const t = now();
  const target = Math.floor(((t - s.t0) / 1000) * s.a.rate);
  const pairs = Math.floor(s.accs.length / 2);
  const senders = pairs * 2;
  while (s.due < target) {
    s.due++;
    // Look for a sender that is in with its partner in; give up on this slot after a full lap.
    let sentOne = false;
    for (let k = 0; k < senders && !sentOne; k++) {
      const i = s.rr++ % senders;
      const c = s.clients[i];
      const p = s.clients[i ^ 1];
      if (!c || !p || !c.open || !p.open) continue;
      const ts = now();
      c.sendRaw(`{"cat":"chat","act":"chat","to":${JSON.stringify(s.accs[i ^ 1])},"msg":{"b":[${ts},${i},${s.due}]}`);
      if (ts >= s.quietStart && !s.armed) s.sent.quiet++;
      else if (s.armed && ts >= s.tDown) s.sent.storm++;
      sentOne = true;
    }
    if (!sentOne) s.skipped++;
  }
}

export async function stormSetup(a: StormSetupArgs): Promise<{ signedIn: number; failed: number; ms: number; tokens: number; firstError: string }> {
  resetCounters();
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  const pairs = Array.from({ length: a.clients }, (_, i) => keyring.addFromSeed(seedOf(a.label, i)));
  const s: State = {
    a, accs: pairs.map((p) => p.address),
    signers: pairs.map((p) => ({ sign: (spam: string) => u8aToHex(p.sign(stringToU8a(spam))) })),
    tokens: new Array<string | undefined>(a.clients).fill(undefined),
    clients: new Array<BenchClient | undefined>(a.clients).fill(undefined),
    armed: false, tArm: Infinity, tDown: Infinity,
    tBack: new Array<number>(a.clients).fill(NaN), attempts: new Array<number>(a.clients).fill(0), back: 0,
    closesArmed: 0, closesUnarmed: 0, refused: 0, http503: 0, resets: 0, deadlineCloses: 0, attemptErrors: 0, attemptErrorSamples: [],
    quietStart: Infinity, sent: { quiet: 0, storm: 0 }, got: { quiet: 0, storm: 0 },
    quiet: new Latency(), storm: new Latency(), skipped: 0, timer: undefined, rr: 0, due: 0, t0: 0, self: new SelfCpu(),
    loopQuiet: monitorEventLoopDelay({ resolution: 10 }), loopStorm: monitorEventLoopDelay({ resolution: 10 }),
    waitingLive: 0, waitingBack: 0, tBacklogs: NaN,
  };
  st = s;
  const r = await signInMany(a.url, s.accs, onFrame, { concurrency: 100, deadlineMs: 300_000, signers: s.signers });
  for (const c of r.clients) attach(s, c.idx, c);
  if ((a.waiting ?? 0) > 0) await loadWaiting(s, a.waiting!);
  s.t0 = now();
  s.quietStart = s.t0 + 1000; // one second to settle before the quiet window
  s.timer = setInterval(() => tick(s), 10);
  setTimeout(() => s.loopQuiet.enable(), 1000);
  return { signedIn: r.clients.length, failed: r.failed, ms: r.ms, tokens: s.tokens.filter((x) => x !== undefined).length, firstError: r.firstError };
}

export function stormArm(): { quietSent: number } {
  const s = st;
  if (!s) throw new Error('stormArm before stormSetup');
  s.tArm = now();
  s.armed = true;
  s.self.reset();
  s.loopQuiet.disable();
  s.loopStorm.enable();
  return { quietSent: s.sent.quiet };
}

export async function stormWait(args: { deadlineMs: number }): Promise<RunResult> {
  const s = st;
  if (!s) throw new Error('stormWait before stormSetup');
  const n = s.accs.length;
  const end = now() + args.deadlineMs;
  while (s.back < n && now() < end) await sleep(20);
  const tAll = now();
  // The backlog variant: every backlog read to its end (the chat's own messages are not counted).
  const backlogs = s.waitingLive;
  while (s.waitingBack < backlogs && now() < end) await sleep(20);
  const selfPct = s.self.pct();
  s.loopStorm.disable();
  // Keep chatting 1 s past the last one back in, then let the messages in flight land.
  await sleep(1000);
  if (s.timer) clearInterval(s.timer);
  const stormEndSent = s.sent.storm;
  await sleep(2000);
  const backs = s.tBack.filter((x) => Number.isFinite(x)).map((x) => x - s.tDown).sort((x, y) => x - y);
  const pct = (p: number): number => (backs.length >= Math.ceil((p / 100) * n) ? backs[Math.ceil((p / 100) * n) - 1] : NaN);
  const q = s.quiet.summary();
  const w = s.storm.summary();
  const attempts = s.attempts.reduce((x, y) => x + y, 0);
  const notes: string[] = [];
  if (s.back < n) notes.push(`${n - s.back} clients not back within ${args.deadlineMs} ms`);
  if (s.attemptErrorSamples.length > 0) notes.push(`reconnect errors e.g. ${s.attemptErrorSamples.join(' | ')}`);
  if (counters.errorSamples.length > 0) notes.push(`error frames e.g. ${counters.errorSamples[0]}`);
  if (s.closesUnarmed > 0) notes.push(`${s.closesUnarmed} sockets closed before the restart`);
  if (s.waitingBack < backlogs) notes.push(`backlogs: ${s.waitingBack} of ${backlogs} waiting messages arrived within ${args.deadlineMs} ms`);
  const stormErrors = s.attemptErrors + s.deadlineCloses + (n - s.back) + s.closesUnarmed
    + Math.max(0, counters.errorFrames - counters.resumeRefused);
  const figures: Record<string, number> = {
    'clients back': s.back,
    'back 99% s': pct(99) / 1000,
    'back 100% s': s.back === n ? pct(100) / 1000 : NaN,
    'back 50% s': pct(50) / 1000,
    'chat p99 ms, quiet': q.p99,
    'chat p99 ms, storm': w.p99,
    'storm/quiet p99': w.p99 / q.p99,
    'chat p50 ms, quiet': q.p50,
    'chat p50 ms, storm': w.p50,
    'chat msgs, quiet': s.got.quiet,
    'chat msgs, storm': s.got.storm,
    'chat lost': Math.max(0, s.sent.quiet - s.got.quiet) + Math.max(0, stormEndSent - s.got.storm),
    'attempts per client': attempts / n,
    'refused (server down)': s.refused,
    'HTTP 503': s.http503,
    'connect resets': s.resets,
    '45003 retry-after': counters.retryAfter,
    '44004 resume refused': counters.resumeRefused,
    'closed by handshake deadline': s.deadlineCloses,
    'loadgen CPU %, storm': selfPct,
    'loadgen loop delay p99 ms, quiet': s.loopQuiet.percentile(99) / 1e6,
    'loadgen loop delay p99 ms, storm': s.loopStorm.percentile(99) / 1e6,
    errors: stormErrors + Math.max(0, backlogs - s.waitingBack),
  };
  if (backlogs > 0) {
    figures['backlog frames'] = s.waitingBack;
    figures['all backlogs in s'] = (s.tBacklogs - s.tDown) / 1000;
  }
  void tAll;
  for (const c of s.clients) c?.close();
  st = undefined;
  await sleep(200);
  return { figures, notes };
}

