/**
 * `npm run bench`: the standard set, floor and service measured in the same run,
 * alternating, a fresh server process for every measurement; prints service/floor ratios
 * and writes docs/benchmarks.md.
 *
 *   node dist/bench/run.js                         standard set (about 6 minutes on 2 cores)
 *   node dist/bench/run.js --only floor            floor alone (no service needed)
 *   node dist/bench/run.js --vs-floor              the floor in the service's slot too: ratios ≈ 1 show the noise
 *   node dist/bench/run.js --scenario fanout --group 2000 --duration 10
 *   node dist/bench/run.js --scenario pairs|fanout|openloop|capacity|signin|offline [--workers 1,2,4]
 *       [--pairs 500] [--group 20,200,2000] [--clients 2000] [--window W] [--rate R] [--target 19000]
 *       [--count 2000] [--recipients 1000] [--per 10] [--duration 6] [--warmup 2] [--write]
 *   node dist/bench/run.js --scenario signin --resume [--count 2000]
 *       signed sign-ins, then all the same clients reconnect at once with their resume tokens
 *   node dist/bench/run.js --scenario storm [--clients 3000,15000] [--rate R] [--quiet 5] [--backoff-base 100]
 *       [--backoff-cap 3000] [--storm-deadline 180]
 *       reconnect storm: N signed clients chatting, the server restarted on the same data dir, everyone back
 *       with resume tokens vs with `sig` only vs the floor, in one run
 *   node dist/bench/run.js --scenario storm --waiting 1000 [--clients 2000] [--signin-backlogs 64]
 *       the same with 1000 unacknowledged messages waiting for every account at the restart: the service
 *       with the sign-in backlogs capped (--signin-backlogs) against uncapped (0), server RSS peak
 *   node dist/bench/run.js --scenario fanout-away [--group 20,200,2000] [--old ../old/dist/src/main.js] [--rate R]
 *       fan-out with half of every group's members away (never signed in): deliveries/s and the disk
 *       written per group message, for the floor, this build and (with --old) another build, in one run.
 *       Same as `npm run bench -- --only fanout-away`.
 *   node dist/bench/run.js --scenario fanout-ephemeral [--group 20] [--typing-rate 0.2] [--churn-ms 4000] [--rounds 2]
 *       fan-out with presence subscriptions and typing on against off, alternating in one run (the
 *       service at the default worker count, each column a fresh server); prints the on/off ratios.
 */
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { flagNum, now, parseFlags } from './common';
import * as driver from './driver';
import { describe, readTail, restartServer, SERVICE_MAIN, startServer, stopServer, type Running, type ServerSpec } from './server';
import { fmt, type RunResult } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const flags = parseFlags(process.argv.slice(2));
const only = flags.get('only');
/** Another build's dist/src/main.js, measured in its own column (fanout-away). */
const oldMain = flags.get('old');
const vsFloor = flags.has('vs-floor');
const single = flags.get('scenario') ?? (only === 'fanout-away' ? 'fanout-away' : undefined);
const duration = flagNum(flags, 'duration', 6);
const warmup = flagNum(flags, 'warmup', 2);
const workerList = (flags.get('workers') ?? '1,2,4').split(',').map(Number).filter((n) => n > 0);
const defaultWorkers = flagNum(flags, 'default-workers', 2);
const maxMinutes = flagNum(flags, 'max-minutes', 14);
/** Extra flags for every service start, e.g. `--service-args "--fsync off"`. */
const serviceArgs = (flags.get('service-args') ?? '').split(' ').filter(Boolean);
const t0 = now();
const loadStart = fs.existsSync('/proc/loadavg') ? fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') : '?';

setTimeout(() => {
  process.stdout.write(`\nbench: hard time limit of ${maxMinutes} min reached, stopping\n`);
  process.exit(4);
}, maxMinutes * 60_000).unref();

const serviceBuilt = fs.existsSync(SERVICE_MAIN);
const runFloor = only !== 'service';
const runService = only !== 'floor' && (serviceBuilt || vsFloor);
if (oldMain !== undefined && !fs.existsSync(oldMain)) {
  process.stdout.write(`--old ${oldMain}: no such file\n`);
  process.exit(2);
}

interface Column {
  name: string;
  spec: ServerSpec;
}

interface Block {
  title: string;
  columns: string[];
  results: (RunResult | undefined)[];
  /** Figure names with a target: figure → [kind, value, text]. */
  targets: { figure: string; check: (v: number, floor: number) => boolean; text: string; columns?: string[] }[];
}

const blocks: Block[] = [];
const problems: string[] = [];
let label = 0;

function columnsFor(workers: number[], auth: 'open' | 'signed', extra?: string[]): Column[] {
  const cols: Column[] = [];
  if (runFloor) cols.push({ name: 'floor', spec: { kind: 'floor', workers: 1, auth } });
  if (runService) {
    for (const w of workers) {
      const spec: ServerSpec = vsFloor ? { kind: 'floor', workers: w, auth } : { kind: 'service', workers: w, auth, extra: [...serviceArgs, ...(extra ?? [])] };
      cols.push({ name: vsFloor ? `floor#${w}` : describe({ ...spec, extra: undefined }), spec });
    }
    // --old: the other build in the same run, at the default worker count.
    if (oldMain !== undefined && !vsFloor) {
      cols.push({ name: `old w${defaultWorkers}`, spec: { kind: 'service', workers: defaultWorkers, auth, extra: [...serviceArgs, ...(extra ?? []), '--status-port', '0'], main: oldMain } });
    }
  }
  return cols;
}

/** Runs `measure` once per column, each against a fresh server. */
async function measureBlock(title: string, cols: Column[], measure: (t: driver.Target) => Promise<RunResult>): Promise<Block> {
  const block: Block = { title, columns: cols.map((c) => c.name), results: [], targets: [] };
  for (const col of cols) {
    process.stdout.write(`· ${title} — ${col.name} … `);
    const tStart = now();
    let r: RunResult | undefined;
    let server: Running | undefined;
    try {
      server = await startServer(col.spec);
      const restart = async (): Promise<{ pid: number; stopMs: number; startMs: number }> => {
        if (!server) throw new Error('no server to restart');
        const rs = await restartServer(server);
        server = rs.running;
        return { pid: rs.running.pid, stopMs: rs.stopMs, startMs: rs.startMs };
      };
      r = await measure({ url: server.url, pid: server.pid, label: `r${++label}`, dataDir: server.dataDir, restart });
      if (server.child.exitCode !== null || server.child.signalCode !== null) {
        r.notes.push(`server exited during the run: ${readTail(server.logPath, 300)}`);
      } else if ((r.figures.errors ?? 0) > 0) {
        const tail = readTail(server.logPath, 300);
        if (tail) r.notes.push(`server log tail: ${tail}`);
      }
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0].slice(0, 400);
      problems.push(`${title} / ${col.name}: ${msg}`);
      r = { figures: {}, notes: [msg] };
    } finally {
      if (server) await stopServer(server);
    }
    block.results.push(r);
    const f = r.figures;
    const key = Object.keys(f)[0];
    process.stdout.write(`${key ? `${key} ${fmt(f[key])}` : 'failed'} (${((now() - tStart) / 1000).toFixed(1)} s)\n`);
    for (const n of r.notes) process.stdout.write(`    note: ${n}\n`);
  }
  blocks.push(block);
  return block;
}

function floorOf(b: Block): RunResult | undefined {
  return b.columns[0] === 'floor' ? b.results[0] : undefined;
}

async function pairs(): Promise<Block> {
  const b = await measureBlock(`pairs (${flagNum(flags, 'pairs', 500)} pairs, closed loop, window ${flagNum(flags, 'window', 4)}/client)`,
    columnsFor(workerList, 'open'),
    (t) => driver.flow(t, { mode: 'pairs', pairs: flagNum(flags, 'pairs', 500), duration, warmup, window: flagNum(flags, 'window', 4), rate: 0 }));
  b.targets.push({ figure: 'deliveries/s', check: (v, fl) => v >= 0.7 * fl, text: '≥ 0.7× floor' });
  b.targets.push({ figure: 'deliveries/s, CPU-normalized', check: (v, fl) => v >= 0.7 * fl, text: '≥ 0.7× floor' });
  return b;
}

async function fanout(group: number): Promise<Block> {
  const clients = flagNum(flags, 'clients', 2000);
  const groups = Math.max(1, Math.floor(clients / group));
  const window = flagNum(flags, 'window', 16);
  // The create frame lists every member (~52 bytes each); the service refuses frames over
  // --max-frame (64 KiB by default), so big groups need a larger limit.
  const frame = group * 52 + 200;
  const extra = frame > 60 * 1024 ? ['--max-frame', String(2 ** Math.ceil(Math.log2(frame * 2)))] : undefined;
  const b = await measureBlock(`fanout group ${group} (${groups} group${groups > 1 ? 's' : ''}, closed loop, window ${window}/group${extra ? `; service run with ${extra.join(' ')}` : ''})`,
    columnsFor(workerList, 'open', extra),
    (t) => driver.flow(t, { mode: 'fanout', group, clients, duration, warmup, window, rate: 0 }));
  if (group === 20 || group === 2000) {
    b.targets.push({ figure: 'deliveries/s', check: (v, fl) => v >= 0.8 * fl, text: '≥ 0.8× floor' });
    b.targets.push({ figure: 'deliveries/s, CPU-normalized', check: (v, fl) => v >= 0.8 * fl, text: '≥ 0.8× floor' });
  }
  return b;
}

/**
 * Fan-out with half of every group's members away: the away half never signs in, so everything
 * they miss is stored. The disk figures show what one group message costs on disk.
 */
async function fanoutAway(group: number): Promise<Block> {
  const clients = flagNum(flags, 'clients', 2000);
  const groups = Math.max(1, Math.floor(clients / group));
  const window = flagNum(flags, 'window', 16);
  const frame = group * 52 + 200;
  const extra = [...(frame > 60 * 1024 ? ['--max-frame', String(2 ** Math.ceil(Math.log2(frame * 2)))] : []), '--status-port', '0'];
  const cols: Column[] = [];
  if (runFloor) cols.push({ name: 'floor', spec: { kind: 'floor', workers: 1, auth: 'open' } });
  if (runService) {
    cols.push({ name: `service w${defaultWorkers}`, spec: { kind: 'service', workers: defaultWorkers, auth: 'open', extra: [...serviceArgs, ...extra] } });
    if (oldMain !== undefined) {
      cols.push({ name: `old w${defaultWorkers}`, spec: { kind: 'service', workers: defaultWorkers, auth: 'open', extra: [...serviceArgs, ...extra], main: oldMain } });
    }
  }
  // --rate R: open loop at R group messages/s in all, so that every group size writes at the same message rate.
  const rate = flagNum(flags, 'rate', 0);
  const loop = rate > 0 ? `open loop at ${fmt(rate)} group msgs/s` : `closed loop, window ${window}/group`;
  return measureBlock(`fanout-away group ${group} (${groups} group${groups > 1 ? 's' : ''}, ${Math.ceil(group / 2)} of each online, ${loop})`,
    cols, (t) => driver.flow(t, { mode: 'fanout', group, clients, duration, warmup, window, rate, away: true }));
}

/**
 * Fan-out with the ephemeral features on against off, in one run, alternating (off, on, off, on…).
 * Both have the same workload of group messages and the same presence churn (one extra member per
 * group signs in and out every --churn-ms); "on" adds every member's presence subscriptions to the
 * rest of its group and --typing-rate typing frames per member per second to its group.
 */
async function fanoutEphemeral(group: number): Promise<Block> {
  const clients = flagNum(flags, 'clients', 2000);
  const groups = Math.max(1, Math.floor(clients / group));
  const window = flagNum(flags, 'window', 16);
  const typingPerS = flagNum(flags, 'typing-rate', 0.2);
  const churnEveryMs = flagNum(flags, 'churn-ms', 4000);
  const rounds = flagNum(flags, 'rounds', 2);
  const cols: Column[] = [];
  // Rounds alternate the order (off then on, on then off): neither column always runs second.
  const modes: boolean[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const mode of i % 2 === 0 ? ['off', 'on'] : ['on', 'off']) {
      modes.push(mode === 'on');
      cols.push({ name: `${mode}${rounds > 1 ? ` #${i + 1}` : ''}`, spec: { kind: 'service', workers: defaultWorkers, auth: 'open', extra: [...serviceArgs, '--status-port', '0', '--max-connections-per-ip', String(clients * 2)] } });
    }
  }
  let k = 0;
  const b = await measureBlock(`fanout-ephemeral group ${group} (${groups} groups, closed loop, window ${window}/group; service w${defaultWorkers}; churn every ${churnEveryMs} ms per group; on: presence subscriptions to the whole group + typing ${typingPerS}/s per member)`,
    cols, (t) => {
      const on = modes[k++]!;
      return driver.flow(t, { mode: 'fanout', group, clients, duration, warmup, window, rate: 0, ephemeral: { presence: on, typingPerS: on ? typingPerS : 0, churnEveryMs } });
    });
  for (const figure of ['deliveries/s', 'deliveries/s, CPU-normalized', 'deliveries per server CPU-s']) {
    const ratios: string[] = [];
    let offSum = 0;
    let onSum = 0;
    for (let i = 0; i + 1 < b.results.length; i += 2) {
      const [offAt, onAt] = modes[i] ? [i + 1, i] : [i, i + 1];
      const off = b.results[offAt]?.figures[figure];
      const on = b.results[onAt]?.figures[figure];
      if (off === undefined || on === undefined || !(off > 0)) continue;
      offSum += off;
      onSum += on;
      ratios.push((on / off).toFixed(2));
    }
    const line = `${figure}: on/off per round ${ratios.join(', ') || '–'}; overall ${offSum > 0 ? (onSum / offSum).toFixed(2) : '–'}x (target >= 0.9x)`;
    process.stdout.write(`  ${line}\n`);
    b.results[0]?.notes.push(line);
  }
  return b;
}

async function openloop(rate: number): Promise<Block> {
  const b = await measureBlock(`open loop pairs at ${fmt(rate)} msgs/s (half the floor's saturation)`,
    columnsFor([defaultWorkers], 'open'),
    (t) => driver.flow(t, { mode: 'pairs', pairs: flagNum(flags, 'pairs', 500), duration, warmup, window: 1, rate }));
  b.targets.push({ figure: 'p99 ms', check: (v, fl) => v <= 2 * fl, text: '≤ 2× floor' });
  return b;
}

async function capacity(): Promise<Block> {
  const target = flagNum(flags, 'target', 19000);
  const b = await measureBlock(`capacity (${fmt(target)} idle connections, held)`, columnsFor([defaultWorkers], 'open'),
    (t) => driver.capacity(t, target, flagNum(flags, 'hold', 5)));
  b.targets.push({ figure: 'connections held', check: (v) => v >= target, text: `= ${fmt(target)}` });
  b.targets.push({ figure: 'KB per idle conn', check: (v) => v <= 12, text: '≤ 12 KB' });
  return b;
}

async function signin(): Promise<Block> {
  const count = flagNum(flags, 'count', 2000);
  const concurrency = flagNum(flags, 'concurrency', 100);
  if (!flags.has('resume')) {
    return measureBlock(`signin (${fmt(count)} sr25519-signed sign-ins, ${concurrency} at a time; floor ignores signatures)`,
      columnsFor([defaultWorkers], 'signed'), (t) => driver.signin(t, count, concurrency, true));
  }
  // --resume: the same clients then reconnect all at once with their tokens; every connection comes
  // from 127.0.0.1, so the per-address limit (1,000 by default) is raised for the service.
  const extra = ['--status-port', '0', '--max-connections-per-ip', String(count + 1000), '--max-connections', String(Math.max(15_000, count + 1000))];
  return measureBlock(`signin --resume (${fmt(count)} sr25519-signed sign-ins ${concurrency} at a time, then all ${fmt(count)} reconnect at once`
    + ` with their resume token; floor ignores signatures and tokens; service run with ${extra.join(' ')})`,
  columnsFor([defaultWorkers], 'signed', extra), (t) => driver.signin(t, count, concurrency, true, true));
}

/**
 * The reconnect storm: per column a fresh server, N signed clients chatting in pairs, a restart
 * (SIGTERM, same port and data directory), every client reconnecting at once with backoff + jitter.
 * Columns: the floor (plain reconnect), the service with resume tokens, the service with `sig` only.
 */
async function storm(n: number): Promise<Block> {
  const waitingFlag = flagNum(flags, 'waiting', 0);
  // The backlog variant chats not at all by default: its unacknowledged chat would come back in the backlogs.
  const rate = flagNum(flags, 'rate', waitingFlag > 0 ? 0 : Math.min(1000, n / 3));
  const quiet = flagNum(flags, 'quiet', 5);
  const deadlineMs = flagNum(flags, 'storm-deadline', 180) * 1000;
  const base = flagNum(flags, 'backoff-base', 100);
  const cap = flagNum(flags, 'backoff-cap', 3000);
  const extra = [...serviceArgs, '--status-port', '0', '--max-connections-per-ip', String(n + 2000), '--max-connections', String(Math.max(15_000, n + 2000))];
  const waiting = waitingFlag;
  const cols: { name: string; spec: ServerSpec; useResume: boolean; plain: boolean }[] = [];
  if (waiting > 0) {
    // Backlogs: the floor stores nothing; the service capped against uncapped, both resuming.
    extra.push('--rate-limit', '1000000');
    const cap = flagNum(flags, 'signin-backlogs', 64);
    for (const k of [cap, 0]) {
      cols.push({ name: `service ${k === 0 ? 'no cap' : `cap ${k}`}`, spec: { kind: 'service', workers: defaultWorkers, auth: 'signed', extra: [...extra, '--signin-backlogs', String(k)] }, useResume: true, plain: false });
    }
  } else if (runFloor) cols.push({ name: 'floor', spec: { kind: 'floor', workers: 1, auth: 'signed' }, useResume: false, plain: true });
  if (runService && waiting === 0) {
    const spec: ServerSpec = { kind: 'service', workers: defaultWorkers, auth: 'signed', extra };
    cols.push({ name: `service w${defaultWorkers} resume`, spec, useResume: true, plain: false });
    cols.push({ name: `service w${defaultWorkers} sig only`, spec, useResume: false, plain: false });
  }
  let i = 0;
  return measureBlock(`storm (${fmt(n)} signed clients chatting in pairs at ${fmt(rate)} msgs/s;${waiting > 0 ? ` ${fmt(waiting)} unacknowledged messages waiting for each at the restart;` : ''} restart = SIGTERM + start on the same data dir;`
    + ` reconnect with full-jitter backoff ${base}·2^k ms capped at ${cap} ms; service run with ${extra.join(' ')})`,
  cols.map((c) => ({ name: c.name, spec: c.spec })), async (t) => {
    const col = cols[i++];
    return driver.storm(t, { clients: n, rate, quietS: quiet, deadlineMs, useResume: col.useResume, plain: col.plain, backoffBaseMs: base, backoffCapMs: cap, waiting });
  });
}

async function offline(): Promise<Block> {
  const recipients = flagNum(flags, 'recipients', 1000);
  const per = flagNum(flags, 'per', 10);
  return measureBlock(`offline (${fmt(recipients)} offline accounts × ${per} messages, then they sign in)`,
    columnsFor([defaultWorkers], 'open'), (t) => driver.offline(t, recipients, per));
}

// ---- report ----

function cell(v: number | undefined, floor: number | undefined, isFloor: boolean): string {
  if (v === undefined) return '–';
  if (isFloor || floor === undefined || !Number.isFinite(floor) || floor === 0 || !Number.isFinite(v)) return fmt(v);
  return `${fmt(v)} (${(v / floor).toFixed(2)}×)`;
}

function renderBlock(b: Block): string {
  const fl = floorOf(b);
  const names: string[] = [];
  for (const r of b.results) for (const k of Object.keys(r?.figures ?? {})) if (!names.includes(k)) names.push(k);
  const lines: string[] = [];
  lines.push(`### ${b.title}`, '');
  lines.push(`| figure | ${b.columns.join(' | ')} |`);
  lines.push(`|---|${b.columns.map(() => '---:').join('|')}|`);
  for (const n of names) {
    const fv = fl?.figures[n];
    lines.push(`| ${n} | ${b.results.map((r, i) => cell(r?.figures[n], fv, i === 0 && fl !== undefined)).join(' | ')} |`);
  }
  const notes = b.results.flatMap((r, i) => (r?.notes ?? []).map((n) => `- ${b.columns[i]}: ${n}`));
  if (notes.length > 0) lines.push('', ...notes);
  lines.push('');
  return lines.join('\n');
}

function targetRows(): string[] {
  const rows: string[] = [];
  for (const b of blocks) {
    const fl = floorOf(b);
    for (const t of b.targets) {
      b.columns.forEach((col, i) => {
        if (col === 'floor' && !t.text.startsWith('=') && !t.text.startsWith('≤ 12')) return;
        const v = b.results[i]?.figures[t.figure];
        const fv = fl?.figures[t.figure] ?? NaN;
        let verdict = '–';
        if (v !== undefined && Number.isFinite(v)) verdict = t.check(v, fv) ? 'pass' : 'FAIL';
        const shown = v === undefined ? '–' : (Number.isFinite(fv) && col !== 'floor' && t.text.includes('floor')) ? `${fmt(v)} (${(v / fv).toFixed(2)}× floor)` : fmt(v);
        rows.push(`| ${b.title.split(' (')[0]} | ${t.figure} ${t.text} | ${col} | ${shown} | ${verdict} |`);
      });
    }
  }
  return rows;
}

function machine(): string[] {
  let cpu = 'unknown';
  try {
    cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    // keep unknown
  }
  let commit = '';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    // not a repo
  }
  return [
    `- nproc: ${os.cpus().length}; CPU: ${cpu}; memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- node ${process.version}; ${os.type()} ${os.release()}; open-file limit per process 20,000`,
    `- date: ${new Date().toISOString()}; commit ${commit || '?'}`,
    `- load average at start ${loadStart}, at end ${fs.existsSync('/proc/loadavg') ? fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') : '?'}` +
      ' (other sessions share this machine; see "other CPU %")',
  ];
}

function report(cmd: string): string {
  const out: string[] = [];
  out.push('# IMGC benchmarks', '');
  out.push('Written by `bench/run.ts`. Every figure is measured in the same run for the floor (`bench/floor.ts`, the least',
    'single-threaded server speaking the same frames: no validation, no persistence, no signature checks) and for the',
    'service (`dist/src/main.js`), alternating, with a fresh server process and a fresh data directory for each',
    'measurement. Cells of the service show `value (service/floor)`.', '');
  out.push('## Machine', '', ...machine(), '');
  out.push('## Reproduce', '', '```', cmd, '```', '');
  out.push('Single scenario, custom sizes: `npm run build && node dist/bench/run.js --scenario fanout --group 2000 --duration 10`', '');
  const tr = targetRows();
  if (tr.length > 0) {
    out.push('## Targets', '', '| scenario | target | server | measured | verdict |', '|---|---|---|---:|---|', ...tr, '');
  }
  out.push('## Figures', '');
  for (const b of blocks) out.push(renderBlock(b));
  out.push('## How to read these', '',
    '- **deliveries/s**: bench messages received by clients per second inside the measured window (after warm-up).',
    '  In fan-out one group message counts once per receiving member.',
    '- **latency**: every bench message carries its send time (`msg = {"b":[sentMs,stream,n]}`) and is timed at receipt,',
    '  in the same load-generator process. In closed loop (a window of W messages in flight per sender or group) latency is',
    '  mostly queueing at saturation; the open-loop row offers a fixed rate on a timetable and measures from the',
    '  scheduled time, so a stalled server is not hidden (no coordinated omission).',
    '- **server CPU %**: utime+stime of the server process (all its threads, and any child processes) over the measured',
    '  window, in % of one core; 200 % is both cores of this machine. **server RSS MB** is the peak VmRSS in the window.',
    '- **loadgen CPU %**: the load generator shares the same two cores. When it is near 100 % it, not the server, may be the',
    '  limit; the floor and the service are then compared under the same handicap.',
    '- **other CPU %**: the machine\'s busy CPU over the window minus server and load generator: work of other',
    '  processes on the same cores. Rows where it is high are noisy; compare floor and service columns measured close together.',
    '- **deliveries/s, CPU-normalized** = deliveries/s × (100 × nproc) / (server CPU % + loadgen CPU %): the rate if server',
    '  and load generator had the whole machine, assuming the pair is CPU-bound (it is, for the floor: raw rates of the floor',
    '  against itself swung 0.46–1.0× with other load while this figure stayed within ±2 %). It overstates a server that',
    '  waits on something other than CPU (disk). **deliveries per server CPU-s** is the server\'s efficiency.',
    '- **server CPU µs per delivery** and **main-thread CPU µs per delivery**: CPU time (utime + stime from /proc) of the',
    '  server\'s threads together, and of its main thread alone (`/proc/<pid>/task/<pid>/stat`: the socket thread, which every',
    '  connection shares), over the window, per delivery. Less sensitive to other load than the rates.',
    '- **capacity**: idle connections signed in (open auth) by several load-generator processes of 4,000 clients each, so',
    '  that none nears the 20,000 open-file limit; the server holds them all. KB per idle conn = (RSS held − RSS empty) /',
    '  connections. A few probe messages are sent between held clients to check they are still served.',
    '- **signin**: connect + `init` + sr25519 signature by the client + `active` + Welcome; the service runs `--auth signed`',
    '  and checks every signature, the floor checks none, so the ratio is the price of verification (plus the rest).',
    '- **offline**: a burst to accounts that have never connected, acknowledged by a barrier message per sender; then the',
    '  accounts sign in and the time until each has all its stored messages is measured.',
    '- **errors**: error frames + sockets closed by the server + failed sign-ins; **lost**: sent and never delivered',
    '  (after a bounded drain).', '');
  out.push('## Limits of this harness',
    '',
    "- Two cores for everything: server, load generator and (here) other sessions' builds and tests. Raw rates move with",
    '  the other load; read them together with **other CPU %** and the CPU-normalized row.',
    '- The load generator is one process for pairs, fan-out, signin and offline. In signin it is the limit for the floor',
    '  (client-side sr25519 signing, loadgen CPU near 100 %).',
    "- Closed-loop latencies are queueing behind the window (Little's law), not service latency; use the open-loop row.",
    '- The 2000-member group is created with one `create` frame of ~100 KB: the service runs with `--max-frame 262144`',
    '  there (its default is 64 KiB). Every other service run uses exactly',
    '  `--port P --host 127.0.0.1 --auth open|signed --workers N --data <fresh dir>` and `IMGC_LOG_LEVEL=warn`.',
    '- Capacity is limited by the 20,000 open files per process: the server holds all 19,000 sockets; the client ends are',
    '  spread over load-generator processes of at most 4,000. Client ports come from the ephemeral range (28,232 ports).', '');
  if (problems.length > 0) out.push('## Problems in this run', '', ...problems.map((p) => `- ${p}`), '');
  return out.join('\n');
}

function printBlocks(): void {
  process.stdout.write('\n');
  for (const b of blocks) process.stdout.write(`${renderBlock(b)}\n`);
  const tr = targetRows();
  if (tr.length > 0) process.stdout.write(['| scenario | target | server | measured | verdict |', ...tr, ''].join('\n'));
}

async function main(): Promise<void> {
  if (only !== 'floor' && !serviceBuilt && !vsFloor) {
    const msg = `service not built (${path.relative(ROOT, SERVICE_MAIN)} missing): floor only`;
    process.stdout.write(`${msg}\n`);
    problems.push(msg);
  }
  process.stdout.write(`bench: floor ${runFloor ? 'yes' : 'no'}, service ${runService ? (vsFloor ? 'floor stand-in' : 'yes') : 'no'}; duration ${duration} s, warm-up ${warmup} s\n`);
  if (single) {
    switch (single) {
      case 'pairs': await pairs(); break;
      case 'fanout': for (const g of (flags.get('group') ?? '20,200,2000').split(',').map(Number)) await fanout(g); break;
      case 'fanout-ephemeral': for (const g of (flags.get('group') ?? '20').split(',').map(Number)) await fanoutEphemeral(g); break;
      case 'fanout-away': for (const g of (flags.get('group') ?? '20,200,2000').split(',').map(Number)) await fanoutAway(g); break;
      case 'openloop': {
        let rate = flagNum(flags, 'rate', 0);
        if (rate <= 0) {
          const b = await measureBlock('pairs floor saturation (for the open-loop rate)', [{ name: 'floor', spec: { kind: 'floor', workers: 1, auth: 'open' } }],
            (t) => driver.flow(t, { mode: 'pairs', pairs: flagNum(flags, 'pairs', 500), duration, warmup, window: 4, rate: 0 }));
          rate = Math.round((b.results[0]?.figures['deliveries/s'] ?? 10_000) / 2);
        }
        await openloop(rate);
        break;
      }
      case 'capacity': await capacity(); break;
      case 'signin': await signin(); break;
      case 'storm': for (const n of (flags.get('clients') ?? '3000').split(',').map(Number)) await storm(n); break;
      case 'offline': await offline(); break;
      default: throw new Error(`unknown scenario ${single}`);
    }
    printBlocks();
    if (flags.has('write')) writeDoc(`node dist/bench/run.js ${process.argv.slice(2).join(' ')}`);
  } else {
    const p = await pairs();
    const floorRate = floorOf(p)?.figures['deliveries/s'];
    for (const g of [20, 200, 2000]) await fanout(g);
    await openloop(Math.round((floorRate && floorRate > 0 ? floorRate : 20_000) / 2));
    await capacity();
    await signin();
    await offline();
    printBlocks();
    writeDoc(`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`);
  }
  process.stdout.write(`bench: done in ${((now() - t0) / 1000).toFixed(0)} s\n`);
  process.exit(0);
}

function writeDoc(cmd: string): void {
  const file = path.resolve(ROOT, flags.get('out') ?? 'docs/benchmarks.md');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Sections written by hand or by other benchmarks (<!-- NAME:begin --> … <!-- NAME:end -->) survive.
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const kept = [...old.matchAll(/<!-- (\w+):begin -->[\s\S]*?<!-- \1:end -->/g)].map((m) => m[0]);
  fs.writeFileSync(file, kept.length > 0 ? `${report(cmd).trimEnd()}\n\n${kept.join('\n\n')}\n` : report(cmd));
  process.stdout.write(`bench: wrote ${path.relative(ROOT, file)}\n`);
}

main().catch((e: Error) => {
  process.stdout.write(`bench failed: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
