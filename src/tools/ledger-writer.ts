/**
 * What `imgc-cluster restore` and `imgc-cluster import` share: the check that a cluster is empty,
 * and a writer that publishes entries into its ledger in order, many in flight at once.
 *
 * Every publish carries a message id of this run and names the message it must follow: the
 * stream's last sequence and last message id (Nats-Expected-Last-Sequence, -Last-Msg-Id), so the
 * ledger the tool writes has no gap and nothing of anyone else in between. If one publish fails
 * (not stored, or refused because something else was stored before it), every later one is
 * refused too, since none follows the message it names; the tool stops (exit 1) with a stream that
 * holds a clean prefix of what it meant to write. A node started against the cluster meanwhile is
 * caught the same way.
 */
import { randomBytes } from 'node:crypto';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Engine } from '../cluster/engine';
import { encodeEntry, ENTRY_BYTES, type Entry, type Op } from '../cluster/entry';

/** A refusal the operator can act on (exit 2): not a failure of the tool. */
export class Refusal extends Error {}

/** Publishes in flight at once. */
const WINDOW = 128;

/** Refuses (Refusal) unless the cluster's ledger stream and positions bucket hold nothing. */
export async function requireEmptyCluster(engine: Engine): Promise<void> {
  const info = await engine.jsm.streams.info(engine.names.stream);
  if (info.state.messages > 0 || info.state.last_seq > 0) {
    throw new Refusal(`the ledger stream ${engine.names.stream} is not empty (${info.state.messages} entries, last sequence ${info.state.last_seq}): ` +
      'restore and import write into an empty cluster only; use another --cluster-name, or delete the stream and the buckets of this one first (see docs/operations.md)');
  }
  if (await hasKeys(engine.positions)) {
    throw new Refusal(`the positions bucket ${engine.names.positionsBucket} is not empty although the ledger is: it belongs to an earlier ledger; delete it first (see docs/operations.md)`);
  }
}

/** Whether `kv` holds at least one key. */
export async function hasKeys(kv: KV): Promise<boolean> {
  const keys = await kv.keys();
  for await (const _ of keys) {
    keys.stop();
    return true;
  }
  return false;
}

/** Whether a stream named `name` exists. */
export async function streamExists(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch (err) {
    if (/stream not found/i.test(String((err as Error).message))) return false;
    throw err;
  }
}

/** Publishes entries in order, each expected right after the previous one; see the file's comment. */
export class LedgerWriter {
  /** Entries published (and, after `done`, acknowledged). */
  entries = 0;
  ops = 0;
  bytes = 0;
  private readonly inFlight: Array<Promise<void>> = [];
  private failure: unknown;
  private readonly run = `imgc-cluster-${randomBytes(6).toString('hex')}`;

  /** The sequence of the last entry sent (the stream starts empty). */
  private last = 0;

  constructor(private readonly js: JetStreamClient, private readonly maxPayload: number) {}

  async publish(subject: string, entry: Entry): Promise<void> {
    this.check();
    const data = encodeEntry(entry);
    if (data.byteLength > this.maxPayload) throw new Error(`an entry of ${data.byteLength} bytes is over the server's max_payload (${this.maxPayload})`);
    const expected = ++this.last;
    this.entries++;
    this.ops += entry.ops.length;
    this.bytes += data.byteLength;
    const msgID = `${this.run}-${expected}`;
    const p = this.js.publish(subject, data, expected > 1 ? { msgID, expect: { lastSequence: expected - 1, lastMsgID: `${this.run}-${expected - 1}` } } : { msgID }).then((ack) => {
      if (ack.seq !== expected || ack.duplicate) throw new Error(`entry stored at sequence ${ack.seq}, expected ${expected}`);
    }).catch((err: unknown) => { this.failure ??= err; });
    this.inFlight.push(p);
    if (this.inFlight.length >= WINDOW) await this.inFlight.shift();
  }

  /** Resolves once everything published is stored; throws the first failure. */
  async done(): Promise<number> {
    await Promise.all(this.inFlight.splice(0));
    this.check();
    return this.last;
  }

  private check(): void {
    if (this.failure !== undefined) {
      const err = this.failure;
      throw new Error(`ledger write failed after ${this.last} entries were sent; the stream holds a prefix of them: delete it and run again (${String((err as Error).message ?? err)})`, { cause: err });
    }
  }
}

/**
 * Gathers operations into entries under ENTRY_BYTES (as `chunkOps` does, counting UTF-8 bytes:
 * an operation never splits) and hands each full entry to the writer.
 */
export class OpBatcher {
  private ops: Op[] = [];
  private bytes = 0;

  constructor(private readonly writer: LedgerWriter, private readonly subject: string, private readonly node: string) {}

  async add(op: Op): Promise<void> {
    const n = Buffer.byteLength(JSON.stringify(op)) + 1;
    if (this.ops.length > 0 && this.bytes + n > ENTRY_BYTES) await this.flush();
    this.ops.push(op);
    this.bytes += n;
  }

  async flush(): Promise<void> {
    if (this.ops.length === 0) return;
    const ops = this.ops;
    this.ops = [];
    this.bytes = 0;
    await this.writer.publish(this.subject, { node: this.node, at: Date.now(), ops });
  }
}
