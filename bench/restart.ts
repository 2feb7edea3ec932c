/**
 * Restart time with a large backup directory: `npm run bench:restart [-- --messages N --groups G]`.
 *
 * Writes a data directory in the service's own on-disk format through the store itself (journal
 * records exactly as the shards and the inbox host write them): G groups of 5 members and N
 * messages kept for 1,000 absent accounts. Then it times the real server from spawn to the first
 * WebSocket frame twice: restoring from the journal alone, and, after a graceful stop has written
 * checkpoints, from the snapshots. The result replaces the restart section of docs/benchmarks.md.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import WebSocket from 'ws';
import { encodeAddress } from '@polkadot/util-crypto';
import { PartitionStore } from '../src/migrate/v1/partition';
import { initDataDir, partitionOf } from '../src/migrate/v1/layout';
import { newGroupRecord } from '../src/actors/group-state';
import { directTemplate } from '../src/protocol/frames';
/** Where the previous version kept its inbox journal. */
const ACCOUNTS_DIR = 'accounts';
import { parseFlags, sleep } from './common';
import { SERVICE_MAIN } from './server';

const flags = parseFlags(process.argv.slice(2));
const MESSAGES = Number(flags.get('messages') ?? 1_000_000);
const GROUPS = Number(flags.get('groups') ?? 100_000);
const ACCOUNTS = 1000;
const PARTITIONS = 16;
const BATCH = 500;

const say = (s: string) => process.stdout.write(`${s}\n`);

/** Appends `entries` ([address, event]) to the partitions of `dir`, in journal records of BATCH entries. */
async function writeJournal(dir: string, entries: Iterable<[string, unknown]>): Promise<void> {
  initDataDir(dir, PARTITIONS);
  const stores = new Map<number, PartitionStore>();
  const pending = new Map<number, Array<[string, unknown]>>();
  const open = async (p: number) => {
    let s = stores.get(p);
    if (!s) { s = (await PartitionStore.open({ dir, partition: p, fsync: 'off', partitions: PARTITIONS })).store; stores.set(p, s); }
    return s;
  };
  for (const e of entries) {
    const p = partitionOf(e[0], PARTITIONS);
    let list = pending.get(p);
    if (!list) { list = []; pending.set(p, list); }
    list.push(e);
    if (list.length >= BATCH) { (await open(p)).append([list]); pending.set(p, []); }
  }
  for (const [p, list] of pending) if (list.length > 0) (await open(p)).append([list]);
  for (const s of stores.values()) await s.close();
}

function* groupEvents(members: string[]): Iterable<[string, unknown]> {
  const now = Date.now();
  for (let i = 0; i < GROUPS; i++) {
    const id = 'GD' + randomBytes(8).toString('hex').slice(0, 10).replace(/[0-9]/g, (d) => 'abcdefghij'[Number(d)]!);
    const list = [0, 1, 2, 3, 4].map((k) => members[(i + k * 7) % members.length]!);
    yield [`group:${id}`, { e: 'created', record: newGroupRecord(id, list, list[0]!, now) }];
  }
}

function* inboxEvents(accounts: string[], sender: string): Iterable<[string, unknown]> {
  const perAccount = Math.ceil(MESSAGES / accounts.length);
  const now = Date.now();
  for (let k = 0; k < perAccount; k++) {
    for (const [a, acc] of accounts.entries()) {
      if (k * accounts.length + a >= MESSAGES) return;
      const tpl = directTemplate(sender, JSON.stringify({ n: k, text: 'a message of ordinary length, kept while away' }));
      yield [`inbox:${acc}`, { e: 'msg', seq: k + 1, at: now, keep: true, head: tpl.head, tail: tpl.tail }];
    }
  }
}

function duSync(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const f = path.join(dir, e.name);
    n += e.isDirectory() ? duSync(f) : fs.statSync(f).size;
  }
  return n;
}

/** Spawns the server on `data` and resolves with the ms until its first WebSocket frame. */
async function timeStart(data: string, port: number): Promise<{ ms: number; stop: () => Promise<number> }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [SERVICE_MAIN, '--port', String(port), '--host', '127.0.0.1', '--auth', 'open', '--status-port', '0',
    '--workers', '2', '--data', data, '--inbox-max', String(Math.ceil(MESSAGES / ACCOUNTS)), '--shutdown-ms', '120000'],
  { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, IMGC_LOG_LEVEL: 'warn' } });
  const deadline = t0 + 600_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`);
      ws.once('message', () => { ws.terminate(); resolve(true); });
      ws.once('error', () => resolve(false));
    });
    if (ok) break;
    if (performance.now() > deadline) { child.kill('SIGKILL'); throw new Error('server not ready in 10 minutes'); }
    await sleep(50);
  }
  const ms = performance.now() - t0;
  const stop = async (): Promise<number> => {
    const s = performance.now();
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await gone;
    return performance.now() - s;
  };
  return { ms, stop };
}

function writeSection(markdown: string): void {
  const file = path.resolve(__dirname, '..', '..', 'docs', 'benchmarks.md');
  const begin = '<!-- restart:begin -->';
  const end = '<!-- restart:end -->';
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# IMGC benchmarks\n';
  const block = `${begin}\n${markdown}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  fs.writeFileSync(file, i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n${block}\n`);
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgc-restart-'));
  const data = path.join(root, 'data');
  try {
    const accounts = Array.from({ length: ACCOUNTS }, () => encodeAddress(randomBytes(32), 42));
    const sender = encodeAddress(randomBytes(32), 42);
    let t = performance.now();
    await writeJournal(data, groupEvents(accounts));
    await writeJournal(path.join(data, ACCOUNTS_DIR), inboxEvents(accounts, sender));
    const writeMs = performance.now() - t;
    const bytes = duSync(data);
    say(`wrote ${GROUPS} groups and ${MESSAGES} kept messages (${(bytes / 2 ** 20).toFixed(0)} MiB of journal) in ${(writeMs / 1000).toFixed(1)} s`);

    const port = 20000 + Math.floor(Math.random() * 900);
    const first = await timeStart(data, port);
    say(`start from the journal alone: ${(first.ms / 1000).toFixed(2)} s`);
    const stopMs = await first.stop();
    say(`graceful stop (checkpoints written): ${(stopMs / 1000).toFixed(2)} s`);
    const snapBytes = duSync(data);
    const second = await timeStart(data, port + 1);
    say(`start from the checkpoints: ${(second.ms / 1000).toFixed(2)} s`);
    await second.stop();

    const cpu = os.cpus()[0]?.model ?? '?';
    writeSection([
      '## Restart time with a large backup directory',
      '',
      `${GROUPS.toLocaleString('en')} groups of 5 members and ${MESSAGES.toLocaleString('en')} messages kept for ${ACCOUNTS.toLocaleString('en')} absent accounts, written in the service's own`,
      "format through its store; the server (`--workers 2`) is timed from spawn to its first WebSocket frame. Machine: " +
        `${os.cpus().length} × ${cpu}, node ${process.version}, ${new Date().toISOString()}.`,
      '',
      '| restore from | data on disk | start time |',
      '|---|---:|---:|',
      `| journal only (no checkpoint yet) | ${(bytes / 2 ** 20).toFixed(0)} MiB | ${(first.ms / 1000).toFixed(2)} s |`,
      `| checkpoints (after a graceful stop, which took ${(stopMs / 1000).toFixed(1)} s) | ${(snapBytes / 2 ** 20).toFixed(0)} MiB | ${(second.ms / 1000).toFixed(2)} s |`,
      '',
      'Reproduce: `npm run build && node dist/bench/restart.js` (flags `--messages N --groups G`).',
    ].join('\n'));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
  process.exit(1);
});
