/**
 * Small helpers shared by the benchmark harness: flags, clocks, accounts, /proc readers.
 * Everything here is tool code; none of it is imported by the service.
 */
import { createHash } from 'node:crypto';
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { encodeAddress } from '@polkadot/util-crypto';

/** Monotonic milliseconds (fractional) inside one process. */
export function now(): number {
  return performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `--key value` and `--flag` pairs; later flags win. */
export function parseFlags(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) {
      out.set(a.slice(2, eq), a.slice(eq + 1));
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      out.set(a.slice(2), argv[i + 1]);
      i++;
    } else {
      out.set(a.slice(2), 'true');
    }
  }
  return out;
}

export function flagNum(flags: Map<string, string>, key: string, dflt: number): number {
  const v = flags.get(key);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${key} wants a number, got ${v}`);
  return n;
}

/**
 * Deterministic open-mode account: SS58 (prefix 42) of sha256(label/index).
 * No key pair behind it; valid for the open auth mode only.
 */
export function openAccount(label: string, index: number): string {
  const pk = createHash('sha256').update(`imgc-bench/${label}/${index}`).digest();
  return encodeAddress(pk, 42);
}

let clkTck = 0;
export function clockTicks(): number {
  if (clkTck > 0) return clkTck;
  try {
    clkTck = Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
  } catch {
    clkTck = 100;
  }
  return clkTck;
}

/** utime+stime ticks of a stat file (a process's or a thread's), or -1 when it is gone. */
function statTicks(file: string): number {
  try {
    const s = fs.readFileSync(file, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return -1;
  }
}

/** utime+stime ticks of one process (all its threads), or -1 when it is gone. */
export function cpuTicks(pid: number): number { return statTicks(`/proc/${pid}/stat`); }

/**
 * utime+stime ticks of a process's main thread alone (the thread whose id is the process's), or -1
 * when it is gone: the socket thread of the service.
 */
export function mainThreadTicks(pid: number): number { return statTicks(`/proc/${pid}/task/${pid}/stat`); }

/** VmRSS of one process in bytes, or -1 when it is gone. */
export function rssBytes(pid: number): number {
  return statusBytes(pid, 'VmRSS');
}

/** The resident memory that is not a file's mapping (heap, buffers; the store's LMDB map is file-backed). */
export function anonBytes(pid: number): number {
  return statusBytes(pid, 'RssAnon');
}

function statusBytes(pid: number, field: 'VmRSS' | 'RssAnon'): number {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(s);
    return m ? Number(m[1]) * 1024 : -1;
  } catch {
    return -1;
  }
}

/** write_bytes of /proc/<pid>/io: bytes the process caused to be sent to storage (NaN when unreadable). */
export function writeBytes(pid: number): number {
  try {
    const m = /write_bytes:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Allocated bytes under a directory (`du -sb` semantics on blocks: st_blocks × 512), NaN when missing. */
export function dirBytes(dir: string): number {
  let n = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return NaN;
  }
  for (const e of entries) {
    const f = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      const d = dirBytes(f);
      if (Number.isFinite(d)) n += d;
    } else {
      try {
        n += fs.statSync(f).blocks * 512;
      } catch {
        // raced with a removal
      }
    }
  }
  return n;
}

/** The process and all its descendants (the service may fork helpers; threads are already counted). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [root];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(rest[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      // raced with an exiting process
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0 && out.length < 10_000) {
    const p = stack.pop() as number;
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** Busy and total jiffies of the whole machine (all CPUs), from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/**
 * Resource view of a server: CPU ticks and RSS summed over its process tree. Given several pids (the
 * nodes of a cluster, nats-server), over all their trees.
 */
export class ProcWatch {
  private pids: number[];
  private readonly roots: number[];
  /** The first root (-1: none, nothing is measured). */
  readonly pid: number;
  private t0 = 0;
  private ticks0 = 0;
  private main0 = 0;
  private m0 = { busy: 0, total: 0 };
  peakRss = 0;
  /** Peak of the anonymous part (heap, buffers), without the store's file-backed pages. */
  peakAnon = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(pid: number | number[]) {
    this.roots = (Array.isArray(pid) ? pid : [pid]).filter((p) => p > 0);
    this.pid = this.roots[0] ?? -1;
    this.pids = this.roots.flatMap((p) => processTree(p));
  }

  ticks(): number {
    let sum = 0;
    for (const p of this.pids) {
      const t = cpuTicks(p);
      if (t > 0) sum += t;
    }
    return sum;
  }

  rss(read: (pid: number) => number = rssBytes): number {
    let sum = 0;
    for (const p of this.pids) {
      const r = read(p);
      if (r > 0) sum += r;
    }
    return sum;
  }

  /** Starts a CPU window and RSS peak sampling (every 250 ms). */
  start(): void {
    if (this.pid <= 0) return;
    this.pids = this.roots.flatMap((p) => processTree(p));
    this.t0 = now();
    this.ticks0 = this.ticks();
    this.main0 = mainThreadTicks(this.pid);
    this.m0 = machineTicks();
    this.peakRss = this.rss();
    this.peakAnon = this.rss(anonBytes);
    this.timer = setInterval(() => {
      this.peakRss = Math.max(this.peakRss, this.rss());
      this.peakAnon = Math.max(this.peakAnon, this.rss(anonBytes));
    }, 250);
    this.timer.unref();
  }

  /**
   * Ends the window: server CPU % of one core over it, peak and current RSS, and the whole
   * machine's busy CPU (% of one core, so up to 100 × nproc) to tell other load apart.
   */
  stop(): { cpuPct: number; mainPct: number; rss: number; peakRss: number; machinePct: number } {
    if (this.pid <= 0) return { cpuPct: NaN, mainPct: NaN, rss: NaN, peakRss: NaN, machinePct: NaN };
    if (this.timer) clearInterval(this.timer);
    const secs = (now() - this.t0) / 1000;
    const dt = this.ticks() - this.ticks0;
    const main1 = mainThreadTicks(this.pid);
    const dMain = main1 >= 0 && this.main0 >= 0 ? main1 - this.main0 : NaN;
    const m = machineTicks();
    const rss = this.rss();
    if (rss > this.peakRss) this.peakRss = rss;
    const ncpu = os.cpus().length;
    const dTotal = m.total - this.m0.total;
    return {
      cpuPct: secs > 0 ? (100 * dt) / clockTicks() / secs : NaN,
      mainPct: secs > 0 ? (100 * dMain) / clockTicks() / secs : NaN,
      rss,
      peakRss: this.peakRss,
      machinePct: dTotal > 0 ? (100 * ncpu * (m.busy - this.m0.busy)) / dTotal : NaN,
    };
  }
}

/** Own CPU over a window, % of one core. */
export class SelfCpu {
  private c0 = process.cpuUsage();
  private t0 = now();
  reset(): void {
    this.c0 = process.cpuUsage();
    this.t0 = now();
  }
  pct(): number {
    const c = process.cpuUsage(this.c0);
    const ms = now() - this.t0;
    return ms > 0 ? ((c.user + c.system) / 1000 / ms) * 100 : NaN;
  }
}
