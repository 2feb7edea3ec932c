/**
 * Opens an LMDB environment in a child process before the service opens it itself. LMDB trusts its
 * file: damaged meta pages end the process that opens it with SIGSEGV, a file shorter than its pages
 * say with SIGBUS, a zeroed page with an assertion (SIGABRT) at the first read that reaches it. None
 * of these can be caught in the process that maps the file, so the first open happens here, where a
 * crash ends only this child, and the service reports what was found instead of crashing on it.
 *
 * The child opens the environment read-only and walks the keys of every database (each leaf and
 * branch page is touched), bounded by WALK_KEYS in total so that start-up stays quick on a large
 * store; it prints one JSON line. `checkStoreOpens` runs it and turns its end into a verdict.
 *
 * Run as a file: `node dist/src/store/lmdb/open-check.js <env dir>`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { open } from 'lmdb';

/** Keys walked at most over all databases: about 0.2 s on a warm store (about 9 million keys a second). */
export const WALK_KEYS = 2_000_000;
/** Longest the check may take (a cold disk, a loop in a damaged tree) before it counts as failed. */
const CHECK_TIMEOUT_MS = 60_000;
/** Databases opened at most (the service uses a handful). */
const MAX_DBS = 128;

/** What the child prints. */
interface ChildReport { ok: boolean; databases?: number; walked?: number; complete?: boolean; error?: string }

export type OpenCheck =
  | { ok: true; databases: number; walked: number; complete: boolean; ms: number }
  | { ok: false; found: string; detail: string; ms: number };

/** What a signal that ended the child says about the file. */
const SIGNALS: Record<string, string> = {
  SIGSEGV: 'LMDB crashed with SIGSEGV opening it: its meta pages or a page they point to are damaged',
  SIGBUS: 'LMDB crashed with SIGBUS opening it: the file is damaged or truncated (shorter than its pages say)',
  SIGABRT: 'LMDB aborted reading it: a page is damaged (zeroed or overwritten)',
  SIGILL: 'LMDB crashed with SIGILL opening it: the file is damaged',
  SIGFPE: 'LMDB crashed with SIGFPE opening it: the file is damaged',
};

/** The child's side: open read-only, walk the keys, print one JSON line. */
function walk(envDir: string): ChildReport {
  const root = open({ path: envDir, readOnly: true, maxDbs: MAX_DBS });
  let walked = 0;
  let databases = 0;
  let complete = true;
  // The main database's keys name the named databases (it holds nothing else here). Read them all
  // first: opening a database while that iteration is open invalidates its read transaction (MDB_BAD_TXN).
  const names = [...root.getKeys({})];
  for (const name of names) {
    if (typeof name !== 'string' || databases >= MAX_DBS) continue;
    let db;
    try {
      db = root.openDB({ name, encoding: 'binary', keyEncoding: 'binary' });
    } catch {
      continue; // a key of the main database that is not a database: nothing to walk
    }
    databases++;
    const left = WALK_KEYS - walked;
    if (left <= 0) { complete = false; break; }
    const entries = (db.getStats() as { entryCount?: number }).entryCount ?? 0;
    if (entries <= left) {
      // Counted in native code: every page of the tree is read, no key is copied into JavaScript
      // (a count takes no limit, hence the entry count from the database's record first).
      walked += db.getKeysCount();
    } else {
      for (const _ of db.getKeys({ limit: left })) walked++;
      complete = false;
    }
  }
  return { ok: true, databases, walked, complete };
}

function childMain(envDir: string): void {
  let report: ChildReport;
  try {
    report = walk(envDir);
  } catch (e) {
    report = { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  process.stdout.write(JSON.stringify(report) + '\n');
  // No close: the environment is read-only and the process ends here.
  process.exit(0);
}

/**
 * Runs the check on `envDir` in a child process. Core dumps are turned off for it where a shell
 * allows (a damaged store crashes it on every start; a crash loop should not fill the disk with them).
 */
export function checkStoreOpens(envDir: string): Promise<OpenCheck> {
  const t0 = performance.now();
  const ms = (): number => Math.round(performance.now() - t0);
  const args = [__filename, envDir];
  const child = existsSync('/bin/sh')
    ? spawn('/bin/sh', ['-c', 'ulimit -c 0; exec "$0" "$@"', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { if (err.length < 4096) err += d.toString(); });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), CHECK_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, found: `the check could not run: ${e.message}`, detail: '', ms: ms() });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve(verdict(out, err.trim(), code, signal, ms()));
    });
  });
}

function verdict(out: string, detail: string, code: number | null, signal: NodeJS.Signals | null, ms: number): OpenCheck {
  let report: ChildReport | undefined;
  try { report = JSON.parse(out.trim().split('\n').pop() ?? '') as ChildReport; } catch { report = undefined; }
  if (report?.ok === true && code === 0) {
    return { ok: true, databases: report.databases ?? 0, walked: report.walked ?? 0, complete: report.complete ?? true, ms };
  }
  if (report?.ok === false) return { ok: false, found: `LMDB cannot open it: ${report.error ?? 'unknown error'}`, detail, ms };
  // Through the shell a signal shows as exit code 128 + its number.
  const sig = signal ?? (code !== null && code > 128 ? signalName(code - 128) : undefined);
  if (sig === 'SIGKILL') return { ok: false, found: `the check did not finish within ${CHECK_TIMEOUT_MS / 1000} s (a loop in a damaged tree, or a disk that does not answer)`, detail, ms };
  if (sig !== undefined) return { ok: false, found: SIGNALS[sig] ?? `LMDB crashed with ${sig} opening it: the file is damaged`, detail, ms };
  return { ok: false, found: `the check ended with exit code ${code} before it reported`, detail, ms };
}

function signalName(n: number): NodeJS.Signals | undefined {
  const signals = constants.signals as Record<string, number>;
  return Object.keys(signals).find((k) => signals[k] === n) as NodeJS.Signals | undefined;
}

if (require.main === module) childMain(process.argv[2] ?? '.');
