/**
 * Drives scenarios against one running server by forking load-generator agents
 * (dist/bench/loadgen.js --agent) and talking to them over IPC. Capacity spreads its
 * clients over several agents, each well under the 20,000 open-file limit.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { flagNum, now, parseFlags, ProcWatch, sleep } from './common';
import type { CapConnectArgs, ClusterTarget, FlowArgs, OfflineArgs, SigninArgs } from './agent-args';
import type { StormSetupArgs } from './storm';
import { track } from './server';
import { fmt, type RunResult } from './stats';

const AGENT = path.join(__dirname, 'loadgen.js');

/** Clients per capacity agent: each agent holds one end of each, far under 20,000 files. */
export const PER_AGENT = 4000;

/** IPC carries JSON: NaN figures arrive as null; turn them back into NaN. */
function revive(v: unknown): unknown {
  const r = v as { figures?: Record<string, number | null> } | null;
  if (r && typeof r === 'object' && r.figures) {
    for (const k of Object.keys(r.figures)) if (r.figures[k] === null) r.figures[k] = NaN;
  }
  return v;
}

export class Agent {
  private child: ChildProcess;
  private seq = 0;
  private waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor() {
    this.child = fork(AGENT, ['--agent'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    track(this.child);
    this.child.on('message', (m: { id: number; ok: boolean; value?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(revive(m.value));
      else w.reject(new Error(m.error ?? 'agent error'));
    });
    this.child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`agent exited (${code})`));
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  call<T>(op: string, args: unknown, timeoutMs: number): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`agent ${op} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, op, args });
    });
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
    setTimeout(() => {
      if (this.child.exitCode === null) this.child.kill('SIGKILL');
    }, 3000).unref();
  }
}

export interface Target {
  url: string;
  pid: number;
  label: string;
  /** The server's data directory (service only), for the disk figures of `fanout-away`. */
  dataDir?: string;
  /** Restarts the server (SIGTERM, then the same build on the same port and data directory). */
  restart?: () => Promise<{ pid: number; stopMs: number; startMs: number }>;
}

async function oneAgent<T>(op: string, args: unknown, timeoutMs: number): Promise<T> {
  const a = new Agent();
  try {
    return await a.call<T>(op, args, timeoutMs);
  } finally {
    a.stop();
  }
}

export interface FlowOpts {
  mode: 'pairs' | 'fanout';
  pairs?: number;
  group?: number;
  /** Members over all groups (fanout): groups = max(1, floor(clients / group)). */
  clients?: number;
  duration: number;
  warmup: number;
  window: number;
  rate: number;
  /** Fan-out with half of every group's members away (never signed in). */
  away?: boolean;
  /** Fan-out with presence subscriptions, typing and presence churn on (see FlowArgs.ephemeral). */
  ephemeral?: { presence: boolean; typingPerS: number; churnEveryMs: number };
  /** The nodes of a cluster (clients spread over them; CPU summed over them and nats-server). */
  cluster?: ClusterTarget;
  /** Added to every message's `msg` (see FlowArgs.pad). */
  pad?: string;
}

export function flow(t: Target, o: FlowOpts): Promise<RunResult> {
  const group = o.group ?? 20;
  const args: FlowArgs = {
    url: t.url, serverPid: t.pid, label: t.label, mode: o.mode,
    pairs: o.pairs ?? 500, group, groups: Math.max(1, Math.floor((o.clients ?? 2000) / group)),
    duration: o.duration, warmup: o.warmup, window: o.window, rate: o.rate,
    ...(o.away ? { away: true } : {}), ...(o.ephemeral ? { ephemeral: o.ephemeral } : {}), ...(o.cluster ? { cluster: o.cluster } : {}), ...(o.pad ? { pad: o.pad } : {}), ...(o.away && t.dataDir !== undefined ? { dataDir: t.dataDir } : {}),
  };
  return oneAgent<RunResult>('flow', args, (o.duration + o.warmup) * 1000 + 180_000);
}

export function signin(t: Target, count: number, concurrency: number, signed: boolean, resume = false): Promise<RunResult> {
  const args: SigninArgs = { url: t.url, serverPid: t.pid, label: t.label, count, concurrency, signed, ...(resume ? { resume: true } : {}) };
  return oneAgent<RunResult>('signin', args, resume ? 480_000 : 240_000);
}

export function offline(t: Target, recipients: number, perRecipient: number): Promise<RunResult> {
  const args: OfflineArgs = { url: t.url, serverPid: t.pid, label: t.label, recipients, perRecipient, senders: 10, concurrency: 100 };
  return oneAgent<RunResult>('offline', args, 240_000);
}

export interface StormOpts {
  clients: number;
  rate: number;
  /** Seconds of quiet chat before the restart. */
  quietS: number;
  deadlineMs: number;
  useResume: boolean;
  plain: boolean;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Unacknowledged messages waiting for every account at the restart (bench/storm.ts). */
  waiting?: number;
}

/**
 * Reconnect storm (bench/storm.ts does the clients): sign in and chat, quiet window, restart the
 * server while the agent waits for everyone to come back.
 */
export async function storm(t: Target, o: StormOpts): Promise<RunResult> {
  if (!t.restart) throw new Error('storm needs a restartable server');
  const agent = new Agent();
  try {
    const args: StormSetupArgs = {
      url: t.url, serverPid: t.pid, label: t.label, clients: o.clients, rate: o.rate, useResume: o.useResume, plain: o.plain,
      backoffBaseMs: o.backoffBaseMs, backoffCapMs: o.backoffCapMs, attemptTimeoutMs: 30_000, waiting: o.waiting,
    };
    const setup = await agent.call<{ signedIn: number; failed: number; ms: number; tokens: number; firstError: string }>('stormSetup', args, 600_000);
    await sleep(1000 + o.quietS * 1000);
    await agent.call('stormArm', null, 10_000);
    const waiting = agent.call<RunResult>('stormWait', { deadlineMs: o.deadlineMs }, o.deadlineMs + 60_000);
    const rs = await t.restart();
    const watch = new ProcWatch(rs.pid);
    watch.start();
    const r = await waiting;
    const res = watch.stop();
    const figures = { ...r.figures };
    delete figures.errors;
    return {
      figures: {
        ...figures,
        // The same, counted from when the new server answered (the clients' first close is at the SIGTERM, ± ms).
        'back 99% s after ready': (r.figures['back 99% s'] ?? NaN) - (rs.stopMs + rs.startMs) / 1000,
        'back 100% s after ready': (r.figures['back 100% s'] ?? NaN) - (rs.stopMs + rs.startMs) / 1000,
        'server stop ms (SIGTERM→exit)': rs.stopMs,
        'server start ms (→first frame)': rs.startMs,
        'server CPU %, storm': res.cpuPct,
        'server RSS peak MB, storm': res.peakRss / 1e6,
        'server RSS anon peak MB, storm': watch.peakAnon / 1e6,
        'other CPU %, storm': Math.max(0, res.machinePct - res.cpuPct - (r.figures['loadgen CPU %, storm'] ?? 0)),
        'first sig sign-ins/s': setup.signedIn / (setup.ms / 1000),
        'tokens held': setup.tokens,
        errors: (r.figures.errors ?? 0) + setup.failed,
      },
      notes: [...(setup.failed > 0 ? [`${setup.failed} first sign-ins failed (${setup.firstError})`] : []), ...r.notes],
    };
  } finally {
    agent.stop();
  }
}

/**
 * Capacity: sign in `target` idle clients over ceil(target / PER_AGENT) agents, hold them,
 * check they still carry messages, and report the server's RSS per connection above empty.
 */
export async function capacity(t: Target, target: number, holdSeconds: number): Promise<RunResult> {
  const notes: string[] = [];
  const watch = new ProcWatch(t.pid);
  await sleep(500);
  const rss0 = watch.rss();
  const k = Math.max(1, Math.ceil(target / PER_AGENT));
  const agents = Array.from({ length: k }, () => new Agent());
  try {
    const per = Math.ceil(target / k);
    watch.start();
    const t0 = now();
    const parts = await Promise.all(agents.map((a, i) => {
      const args: CapConnectArgs = {
        url: t.url, label: t.label, offset: i * per, count: Math.max(0, Math.min(per, target - i * per)),
        concurrency: 50, deadlineMs: 150_000,
      };
      return a.call<{ held: number; failed: number; ms: number; firstError: string }>('capConnect', args, 200_000);
    }));
    const connectMs = now() - t0;
    const res = watch.stop();
    const heldNow = parts.reduce((s, p) => s + p.held, 0);
    const failed = parts.reduce((s, p) => s + p.failed, 0);
    const firstError = parts.find((p) => p.firstError)?.firstError;
    if (failed > 0) notes.push(`${failed} connects failed (${firstError})`);
    await sleep(2000);
    const rss1 = watch.rss();
    await sleep(Math.max(0, holdSeconds * 1000 - 2000));
    const verify = await Promise.all(agents.map((a) => a.call<{ sent: number; ok: number }>('capVerify', 25, 30_000)));
    const status = await Promise.all(agents.map((a) => a.call<{ open: number; errors: number }>('capStatus', null, 30_000)));
    const rss2 = watch.rss();
    const openAfter = status.reduce((s, p) => s + p.open, 0);
    const vSent = verify.reduce((s, p) => s + p.sent, 0);
    const vOk = verify.reduce((s, p) => s + p.ok, 0);
    if (vOk < vSent) notes.push(`only ${vOk}/${vSent} probe messages arrived while holding`);
    await Promise.all(agents.map((a) => a.call('capClose', null, 60_000)));
    return {
      figures: {
        'connections held': openAfter,
        'connect+sign-in /s': heldNow / (connectMs / 1000),
        'RSS empty MB': rss0 / 1048576,
        'RSS held MB': Math.max(rss1, rss2) / 1048576,
        'KB per idle conn': heldNow > 0 ? (rss1 - rss0) / heldNow / 1024 : NaN,
        'server CPU %': res.cpuPct,
        'probe msgs ok': vOk,
        errors: failed + status.reduce((s, p) => s + p.errors, 0),
      },
      notes,
    };
  } finally {
    for (const a of agents) a.stop();
  }
}

export function printResult(title: string, r: RunResult): void {
  process.stdout.write(`${title}\n`);
  for (const [k, v] of Object.entries(r.figures)) process.stdout.write(`  ${k.padEnd(28)} ${fmt(v)}\n`);
  for (const n of r.notes) process.stdout.write(`  note: ${n}\n`);
}

/** `node dist/bench/loadgen.js --url ws://127.0.0.1:P [--pid N] --scenario …` against a running server. */
export async function cli(argv: string[]): Promise<void> {
  const f = parseFlags(argv);
  const url = f.get('url');
  const scenario = f.get('scenario');
  if (!url || !scenario) {
    process.stdout.write('usage: node dist/bench/loadgen.js --url ws://127.0.0.1:P [--pid <server pid>] --scenario pairs|fanout|capacity|signin|offline [flags]\n');
    process.exit(2);
  }
  const t: Target = { url, pid: flagNum(f, 'pid', -1), label: f.get('label') ?? `cli${process.pid}` };
  const duration = flagNum(f, 'duration', 8);
  const warmup = flagNum(f, 'warmup', 2);
  const window = flagNum(f, 'window', 4);
  const rate = flagNum(f, 'rate', 0);
  let r: RunResult;
  switch (scenario) {
    case 'pairs': r = await flow(t, { mode: 'pairs', pairs: flagNum(f, 'pairs', 500), duration, warmup, window, rate }); break;
    case 'fanout': r = await flow(t, { mode: 'fanout', group: flagNum(f, 'group', 200), clients: flagNum(f, 'clients', 2000), duration, warmup, window, rate }); break;
    case 'capacity': r = await capacity(t, flagNum(f, 'target', 19000), flagNum(f, 'hold', 5)); break;
    case 'signin': r = await signin(t, flagNum(f, 'count', 2000), flagNum(f, 'concurrency', 100), f.get('signed') !== 'false', f.has('resume')); break;
    case 'offline': r = await offline(t, flagNum(f, 'recipients', 1000), flagNum(f, 'per', 10)); break;
    default: throw new Error(`unknown scenario ${scenario}`);
  }
  printResult(`${scenario} @ ${url}`, r);
  process.exit(0);
}
