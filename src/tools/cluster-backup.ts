/**
 * `imgc-cluster backup DEST` and `imgc-cluster restore SRC` (see cluster-admin.ts): a cluster's
 * durable state is its ledger stream and two key-value buckets, so a backup is those, read from
 * JetStream, and a restore publishes them again into an empty cluster.
 *
 * A backup directory (0700, every file 0600):
 *   ledger.jsonl              one line per ledger entry, in stream order: {"seq","subject","storedAt","data":<entry>}
 *                             (storedAt: when JetStream stored it, ms; an entry stored too late was void on
 *                             every node, see cluster/entry.ts, and stays out of a restored ledger)
 *   positions.json            the positions bucket: {"a.<account>": {delivered, acked, ackMode}, …}
 *   meta.json                 the meta bucket: {"resume-key": "<hex>"} (a secret: it signs resume tokens)
 *   imgc-cluster-backup.json  written last, so its presence marks a complete backup:
 *                             {format, version, cluster, epoch, lastSeq, messages, positions, createdAt}
 *
 * Consistency: the positions are read first, then the stream's last sequence, and the ledger is read
 * up to that sequence. A position can then only name records the ledger of the backup holds (an
 * account whose position is a little behind gets a few frames again, never misses one); entries
 * stored after the start are not in the backup. Nodes may run during a backup.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, chmodSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { Engine, maxPayload } from '../cluster/engine';
import { decodeEntry, VOID_AFTER_MS, type Entry } from '../cluster/entry';
import { clusterNames } from '../cluster/names';
import { makeDirs, writePrivateFileAtomic } from '../files';
import { LedgerWriter, Refusal, requireEmptyCluster, streamExists } from './ledger-writer';

export const BACKUP_MARKER = 'imgc-cluster-backup.json';
export const LEDGER_FILE = 'ledger.jsonl';
export const POSITIONS_FILE = 'positions.json';
export const META_FILE = 'meta.json';

/** Ledger entries asked for at once while reading, how long one ask waits, and asks in a row that may come back empty. */
const FETCH_BATCH = 1000;
const FETCH_EXPIRES_MS = 5000;
const STALL_FETCHES = 6;

export interface ClusterTarget {
  url: string;
  name: string;
  replicas: number;
  /** The nodes' --cluster-heartbeat-ms (the TTL of the nodes bucket, when the tool creates it). */
  heartbeatMs: number;
}

export interface BackupMarker {
  format: 'imgc-cluster-backup';
  version: 1;
  cluster: string;
  epoch: string;
  lastSeq: number;
  messages: number;
  positions: number;
  createdAt: string;
}

interface LedgerLine { seq: number; subject: string; storedAt?: number; data: Entry }

/** Opens a cluster's engine for writing (creates the stream and buckets when absent), as a node does. */
export function openEngine(t: ClusterTarget, log: Logger): Promise<Engine> {
  return Engine.open({ url: t.url, name: t.name, replicas: t.replicas, nodeTtlMs: t.heartbeatMs * 4, log });
}

/** Every key of `kv` with its value, parsed as JSON when `json` (else the text as stored). */
async function readBucket(kv: KV, json: boolean): Promise<Record<string, unknown>> {
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  keys.sort();
  const out: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i += 64) {
    await Promise.all(keys.slice(i, i + 64).map(async (k) => {
      const e = await kv.get(k);
      if (!e || e.operation !== 'PUT') return;
      out[k] = json ? e.json<unknown>() : e.string();
    }));
  }
  return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]]));
}

/** Writes a private file (0600, new, fsync'd, renamed into place) line by line, without holding it all. */
async function writeLinesAtomic(file: string, lines: AsyncIterable<string>): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    let buf: string[] = [];
    let size = 0;
    for await (const line of lines) {
      buf.push(line, '\n');
      size += line.length + 1;
      if (size >= 1 << 20) { await fh.write(buf.join('')); buf = []; size = 0; }
    }
    if (buf.length > 0) await fh.write(buf.join(''));
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
}

export async function backupCluster(t: ClusterTarget, dest: string, log: Logger): Promise<BackupMarker> {
  if (existsSync(dest) && readdirSync(dest).length > 0) throw new Refusal(`backup destination ${dest} is not empty`);
  const names = clusterNames(t.name);
  const nc = await connect({ servers: t.url, name: `imgc-cluster-backup-${t.name}` });
  try {
    const jsm = await jetstreamManager(nc);
    if (!(await streamExists(jsm, names.stream))) throw new Refusal(`no cluster ${t.name} at ${t.url}: the stream ${names.stream} does not exist`);
    const js = jetstream(nc, { timeout: 10_000 });
    const kvm = new Kvm(js);
    const bucket = async (name: string, json: boolean): Promise<Record<string, unknown>> =>
      (await streamExists(jsm, `KV_${name}`)) ? readBucket(await kvm.open(name), json) : {};
    // Positions before the ledger's end (see the file's comment), then the ledger up to that end.
    const positions = await bucket(names.positionsBucket, true);
    const meta = await bucket(names.metaBucket, false);
    const info = await jsm.streams.info(names.stream);
    const lastSeq = info.state.last_seq;
    const epoch = info.created;

    makeDirs(dest);
    chmodSync(dest, 0o700);
    let messages = 0;
    let unreadable = 0;
    async function* lines(): AsyncGenerator<string> {
      if (lastSeq === 0 || info.state.messages === 0) return;
      // An ordered consumer from sequence 1: every entry once, in order (the client recreates it
      // after a hiccup, from where it got), fetched in batches up to the end taken above.
      const consumer = await js.consumers.get(names.stream, { filter_subjects: names.ledgerAll, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 });
      let seq = 0;
      let idle = 0;
      while (seq < lastSeq) {
        let got = 0;
        for await (const m of await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS })) {
          got++;
          seq = m.seq;
          if (seq > lastSeq) break;
          let data: Entry | undefined;
          try {
            data = decodeEntry(m.data);
          } catch (err) {
            // Nodes skip such an entry too (ledger.ts): not ours, nothing to restore.
            unreadable++;
            log.warn({ err, seq, subject: m.subject }, 'ledger entry unreadable: left out of the backup');
          }
          if (data !== undefined) {
            messages++;
            yield JSON.stringify({ seq, subject: m.subject, storedAt: Number(m.timestampNanos / 1_000_000n), data } satisfies LedgerLine);
            if (messages % 50_000 === 0) log.info({ seq, lastSeq }, 'backup: reading the ledger');
          }
          // At the end: not waiting for the rest of the batch (it would wait until the fetch expires).
          if (seq >= lastSeq) break;
        }
        idle = got === 0 ? idle + 1 : 0;
        if (idle >= STALL_FETCHES) throw new Error(`reading the ledger stalled at sequence ${seq} of ${lastSeq} (nothing for ${(STALL_FETCHES * FETCH_EXPIRES_MS) / 1000} s)`);
      }
    }
    await writeLinesAtomic(join(dest, LEDGER_FILE), lines());
    writePrivateFileAtomic(join(dest, POSITIONS_FILE), `${JSON.stringify(positions, null, 1)}\n`);
    writePrivateFileAtomic(join(dest, META_FILE), `${JSON.stringify(meta, null, 1)}\n`);
    const marker: BackupMarker = {
      format: 'imgc-cluster-backup', version: 1, cluster: t.name, epoch, lastSeq, messages, positions: Object.keys(positions).length, createdAt: new Date().toISOString(),
    };
    writePrivateFileAtomic(join(dest, BACKUP_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
    if (unreadable > 0) log.warn({ unreadable }, 'backup: unreadable ledger entries were left out');
    return marker;
  } finally {
    await nc.drain().catch(() => nc.close());
  }
}

/** The entries of a backup's ledger file, in file order. */
async function* ledgerLines(src: string): AsyncGenerator<LedgerLine> {
  const lines = createInterface({ input: createReadStream(join(src, LEDGER_FILE), { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const text of lines) {
    if (text.trim() === '') continue;
    const line = JSON.parse(text) as LedgerLine;
    if (typeof line.seq !== 'number' || typeof line.subject !== 'string' || typeof line.data?.node !== 'string' || !Array.isArray(line.data.ops)) {
      throw new Refusal(`${LEDGER_FILE}: a line that is not a ledger entry: the backup is damaged`);
    }
    yield line;
  }
}

/** The backup's marker, checked; a Refusal when `src` is not a complete cluster backup. */
export function readMarker(src: string): BackupMarker {
  const file = join(src, BACKUP_MARKER);
  if (!existsSync(file)) throw new Refusal(`${src} is not a complete cluster backup (no ${BACKUP_MARKER})`);
  const m = JSON.parse(readFileSync(file, 'utf8')) as BackupMarker;
  if (m.format !== 'imgc-cluster-backup' || m.version !== 1) throw new Refusal(`${file}: not a cluster backup this version reads`);
  for (const f of [LEDGER_FILE, POSITIONS_FILE, META_FILE]) if (!existsSync(join(src, f))) throw new Refusal(`${src} is not a complete cluster backup (no ${f})`);
  return m;
}

export interface RestoreResult { entries: number; skippedClaims: number; droppedEntries: number; positions: number; meta: number; lastSeq: number }

/**
 * Publishes a backup into an empty cluster: every entry on its subject (renamed into the target
 * cluster when its name differs), in order, at the sequence it had, without its `claim` operations
 * (partition owners of the old nodes): a record's offset is numbered from its entry's sequence
 * (src/cluster/entry.ts), so an entry dropped (void, or only claims) leaves an empty entry in its
 * place and every record keeps its `seq`. Then the positions and meta keys. No node of the
 * target cluster may run meanwhile (see docs/operations.md).
 */
export async function restoreCluster(t: ClusterTarget, src: string, log: Logger): Promise<RestoreResult> {
  const marker = readMarker(src);
  const positions = JSON.parse(readFileSync(join(src, POSITIONS_FILE), 'utf8')) as Record<string, unknown>;
  const meta = JSON.parse(readFileSync(join(src, META_FILE), 'utf8')) as Record<string, unknown>;
  const fromRoot = `imgc.${marker.cluster}.ledger.`;
  // Checked whole before anything is written: a damaged backup is refused, not half restored.
  let count = 0;
  let prev = 0;
  for await (const line of ledgerLines(src)) {
    if (!(line.seq > prev && line.seq <= marker.lastSeq && line.subject.startsWith(fromRoot))) {
      throw new Refusal(`${LEDGER_FILE}: entry ${line.seq} on ${line.subject} is out of order or not of cluster ${marker.cluster}: the backup is damaged`);
    }
    prev = line.seq;
    count++;
  }
  if (count !== marker.messages) throw new Refusal(`${LEDGER_FILE} holds ${count} entries, the backup says ${marker.messages}: the backup is damaged`);
  const engine = await openEngine(t, log);
  try {
    await requireEmptyCluster(engine);
    const toRoot = engine.names.ledgerAll.slice(0, -1);
    const writer = new LedgerWriter(engine.js, maxPayload(engine.nc));
    let read = 0;
    let skippedClaims = 0;
    let droppedEntries = 0;
    for await (const line of ledgerLines(src)) {
      read++;
      const entry = line.data;
      // Void where it was stored (see VOID_AFTER_MS): void in the restored ledger too, by its operations left out.
      const voided = line.storedAt !== undefined && typeof entry.at === 'number' && line.storedAt - entry.at > VOID_AFTER_MS;
      const ops = voided ? [] : entry.ops.filter((op) => op.t !== 'claim');
      skippedClaims += voided ? 0 : entry.ops.length - ops.length;
      if (ops.length === 0) droppedEntries++;
      // Each entry at the sequence it had (the backup holds every one of them, in order).
      if (line.seq !== writer.entries + 1) throw new Refusal(`${LEDGER_FILE}: entry ${line.seq} where ${writer.entries + 1} was next: the backup does not start at the ledger's first entry`);
      await writer.publish(toRoot + line.subject.slice(fromRoot.length), { node: entry.node, at: Date.now(), ops });
      if (read % 50_000 === 0) log.info({ read, of: marker.messages }, 'restore: publishing the ledger');
    }
    const last = await writer.done();
    for (const [k, v] of Object.entries(positions)) await engine.positions.put(k, JSON.stringify(v));
    for (const [k, v] of Object.entries(meta)) await engine.meta.put(k, String(v));
    return { entries: writer.entries, skippedClaims, droppedEntries, positions: Object.keys(positions).length, meta: Object.keys(meta).length, lastSeq: last };
  } finally {
    await engine.close();
  }
}
