/**
 * What the ledger holds: entries, each the output of one turn of one node for one route (a
 * partition's group actors and the direct messages of its conversations, or the node's own
 * requests), as a list of operations. Every node receives every entry, in the stream's order, and
 * skips unread one it has no part in (interest.ts, from the entry's first line); otherwise it applies
 * the states, writes the records to the sockets it holds, and stores the records of the
 * conversations it keeps (stored-partitions.ts). A record's offset comes from the entry's sequence
 * (firstOffset, recordsOf), so it is the same on every node whether that node stores it, or even
 * reads it, or not. Connection ids are unique in the cluster (see connIdBase), so an operation that
 * answers a connection is acted on by the one node that holds it.
 */
import { postRecord, type Post } from '../actors/envelopes';
import type { Op } from '../carrier/ops';
import { accountConv, type NewEntry } from '../store/ports';

export type { Op };

/**
 * `at`: when its node published it (ms since the epoch, the node's clock). An entry JetStream
 * stored more than VOID_AFTER_MS later is void on every node alike (the stored time is part of the
 * message, so every replica decides the same): its publisher gave up on it at PUBLISH_TIMEOUT_MS
 * and told the requester so, and a publish the client library kept through a disconnect and sent
 * late must not make that answer false.
 */
export interface Entry {
  node: string;
  at: number;
  /** The node's own number for the entry (to know its own entries when they are applied). */
  id?: number;
  ops: Op[];
}

/** How long a node waits for JetStream to store an entry before it refuses the requests in it. */
export const PUBLISH_TIMEOUT_MS = 5000;
/** Stored this long after it was published, an entry is void (below PUBLISH_TIMEOUT_MS, with room for clock skew). */
export const VOID_AFTER_MS = 3000;

/** Largest entry published: NATS refuses payloads over its max_payload (1 MiB by default). */
export const ENTRY_BYTES = 768 * 1024;

export function encodeEntry(e: Entry): Uint8Array { return Buffer.from(JSON.stringify(e)); }

/**
 * An entry as stored: its JSON, after a first line saying what it concerns (interest.ts) when its
 * publisher wrote one. A line in the payload, not a NATS header: a reader finds it with one
 * indexOf and decodes only it, and nats-server handles the message as one without headers.
 */
export function splitEntry(data: Uint8Array): { line: string | undefined; body: Uint8Array } {
  if (data.length === 0 || data[0] === 0x7b /* { */) return { line: undefined, body: data };
  const nl = data.indexOf(0x0a);
  if (nl < 0) return { line: undefined, body: data };
  return { line: Buffer.from(data.buffer, data.byteOffset, nl).toString('latin1'), body: data.subarray(nl + 1) };
}

export function decodeEntry(data: Uint8Array): Entry {
  const { body } = splitEntry(data);
  const e = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')) as Entry;
  if (typeof e !== 'object' || e === null || typeof e.node !== 'string' || typeof e.at !== 'number' || !Array.isArray(e.ops)) throw new Error('not a ledger entry');
  return e;
}

/** Operations for one entry, each already serialized (so an entry is encoded without serializing them again). */
export interface Chunk { ops: Op[]; json: string[] }

/** The first entry's worth of `ops`, under ENTRY_BYTES (an operation never splits; one too large goes alone). */
export function takeChunk(ops: readonly Op[]): Chunk {
  const out: Chunk = { ops: [], json: [] };
  let bytes = 0;
  for (const op of ops) {
    const json = JSON.stringify(op);
    if (out.ops.length > 0 && bytes + json.length > ENTRY_BYTES) break;
    out.ops.push(op);
    out.json.push(json);
    bytes += json.length + 1;
  }
  return out;
}

/** Splits a turn's operations into entries under ENTRY_BYTES, in order. */
export function chunkOps(ops: readonly Op[]): Chunk[] {
  const out: Chunk[] = [];
  for (let i = 0; i < ops.length;) {
    const c = takeChunk(ops.slice(i, i + 4096));
    out.push(c);
    i += c.ops.length;
  }
  return out;
}

/** The entry of a chunk, as bytes (the same JSON as `encodeEntry` would give), after its interest line when given. */
export function encodeChunk(node: string, at: number, id: number, chunk: Chunk, line?: string): Uint8Array {
  return Buffer.from(`${line === undefined ? '' : `${line}\n`}{"node":${JSON.stringify(node)},"at":${at},"id":${id},"ops":[${chunk.json.join(',')}]}`);
}

/**
 * Records an entry may number: a record's offset (the `seq` its recipients see) is
 * `entrySeq * RECORDS_PER_ENTRY + k`, k counting the entry's records in order (recordsOf), so every
 * node knows every offset whether it keeps the record or not, and offsets still increase with the
 * ledger. An entry is under ENTRY_BYTES, and a record costs at least its recipient's address in it,
 * so no entry comes near the bound; offsets stay below 2^53 for 2^33 entries.
 */
export const RECORDS_PER_ENTRY = 2 ** 20;

/** The offset of the first record of the entry at ledger sequence `seq`. */
export function firstOffset(seq: number): number { return seq * RECORDS_PER_ENTRY; }

/** A record an entry makes, with its offset: what the node keeping its conversation stores. */
export interface EntryRecord { offset: number; entry: NewEntry; op: Op }

/**
 * The records of an entry's operations, numbered as the applier numbers them (actors/delivery.ts,
 * `put`): a post to a conversation is one record, a post to accounts' own logs one per recipient, a
 * change one, an import's record its own offset or the next. (The deduplication of resends happens
 * before the ledger, so every post counts.)
 */
export function recordsOf(ops: readonly Op[], first: number): EntryRecord[] {
  const out: EntryRecord[] = [];
  let next = first;
  const add = (op: Op, conv: string, at: number, p: Post): void => { out.push({ offset: next++, op, entry: postRecord(conv, p, at) }); };
  for (const op of ops) {
    if (op.t === 'post') {
      if (op.post.conv === 'own') for (const account of op.post.to) add(op, accountConv(account), op.at, op.post);
      else add(op, op.post.conv, op.at, op.post);
    } else if (op.t === 'change') {
      add(op, op.change.conv, op.at, op.change.post);
    } else if (op.t === 'append') {
      out.push({ offset: op.offset ?? next++, op, entry: op.entry });
    }
  }
  return out;
}
