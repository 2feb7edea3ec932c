/**
 * Snapshots of what cluster nodes hold, in JetStream's object store (the engine's `objects`, bucket
 * `imgc_<name>_snapshots`), so that the ledger can be trimmed below what they cover and a node that
 * joins or restarts loads them and replays only the entries after them: its start no longer grows
 * with the whole history, nor the ledger with the service's age (Kafka Streams restores a task from
 * a compacted changelog the same way, not from all history).
 *
 * Objects: `p.<n>`, every retained record of the conversations of partition n (written by the node
 * keeping it), and `shared`, every actor state and membership (replicated: any node may write it).
 * Their metadata says the ledger sequence they cover (`seq`), the number of partitions they were cut
 * with and the format; their lines are snapshot-lines.ts.
 *
 * Fuzzy, and right anyway: a snapshot is read from a live store page by page, so it may hold changes
 * applied after `seq` (never less than everything through `seq`: the writer's store holds all of it
 * when the write begins). Loading it and then replaying the ledger after `seq` gives what replaying
 * everything gives, because every change replays onto it alike: an append at an offset the store
 * holds is a no-op, an edit or delete rewrites its original again, a retention trim trims again, a
 * state is replaced whole, a join or leave sets the membership again.
 *
 * Streamed both ways: a write reads the store a page at a time as the object store takes the next
 * chunk, yielding to the event loop between pages (the node keeps serving); a load asks JetStream for
 * a few chunks at a time and applies each before asking for more. Memory holds a page and a few
 * chunks, never a partition.
 *
 * Never backwards: a write replaces an object only if it covers more than the one there, and only if
 * no other write replaced it meanwhile (a compare-and-set on the object's revision), so a slow or
 * stale writer never puts back a snapshot older than the ledger's trimmed start.
 *
 * Damage: a load checks every line of a chunk before it applies any of them, then the count line and
 * the object's SHA-256 digest at the end, and refuses a snapshot that fails with a SnapshotError.
 * What the chunks before the failure applied stays: lines that passed their checks, each a record at
 * its own offset (or a state, a membership), and applying one again is a no-op, so loading a good
 * snapshot after a refused one, or filling the partition in from the ledger, is safe. The exception
 * is a digest that fails at the end: the bytes changed after they were written (JetStream checks each
 * stored message against its own checksum, so this is rare) and lines applied from them may be
 * wrong; the error says so, and the partition's records in that store are to be dropped (trimmed)
 * before it is filled in again.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { setSha256Backend, type ObjectInfo } from '@nats-io/obj';
import type { Logger } from 'pino';
import { convPartition } from '../actors/address';
import type { Store } from '../store/ports';
import type { Engine } from './engine';
import { BadLine, parseLine, partitionLines, sharedLines, type Line, type Tally } from './snapshot-lines';

/** The object of the shared state (every actor state and membership). */
export const SHARED_OBJECT = 'shared';
/** The object of partition `p`'s records. */
export const partitionObject = (p: number): string => `p.${p}`;

/** The lines' format (snapshot-lines.ts), in every object's metadata: a reader refuses another one. */
const FORMAT = '1';
/** Chunks (128 KiB each) a load asks JetStream for at once. */
const CHUNKS_AT_ONCE = 8;
/** How long a load waits for the next chunks before it gives the object up as gone. */
const FETCH_EXPIRES_MS = 5000;
/** The byte that ends a line. */
const NEWLINE = 0x0a;
/** The longest line a load takes (a record is under a ledger entry's size; a large group's state may be larger). */
const MAX_LINE = 16 * 1024 * 1024;
/** Lines a load applies between flushes of the store. */
const FLUSH_EVERY = 65_536;

/** What a refused load leaves behind, said in its error. */
const LEFT = 'the lines applied before it was found stay, each at its own place (applying them again changes nothing)';

/** A snapshot that cannot be loaded: which object, and why. */
export class SnapshotError extends Error {
  constructor(readonly object: string, message: string, options?: { cause?: unknown }) {
    super(`snapshot ${object}: ${message}`, options);
    this.name = 'SnapshotError';
  }
}

/** A snapshot written: its object, the ledger sequence it covers, its lines (records, or states and memberships) and bytes. */
export interface Written { object: string; seq: number; count: number; bytes: number }

// The object store's digest of what it writes by node:crypto, not its JavaScript SHA-256 (which took
// about half a large partition's write). The setting is the library's, for the process: snapshots are its one use.
setSha256Backend('native');

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class Snapshots {
  constructor(private readonly engine: Engine, private readonly partitions: number, private readonly log: Logger) {}

  /**
   * Writes every retained record of the conversations of `partition` in `store` as `p.<partition>`,
   * covering the ledger through `seq`: the store must hold every record of the partition's entries
   * through `seq` (it keeps the partition, filled in: StoredPartitions.ready). Undefined (nothing
   * written) if the snapshot there covers `seq` already, or another write replaced it meanwhile.
   */
  writePartition(partition: number, seq: number, store: Store): Promise<Written | undefined> {
    this.checkPartition(partition);
    const tally: Tally = { count: 0 };
    return this.write(partitionObject(partition), seq, tally, partitionLines(store, partition, this.partitions, tally));
  }

  /**
   * Appends every record of `p.<partition>` to `store` at its offset. Resolves with the ledger
   * sequence the snapshot covers (replay the ledger after it), or undefined if there is none.
   * Records the store holds already are left as they are (an append at a held offset is a no-op):
   * load into a store that holds nothing of the partition from before `seq` (a replica behind the
   * ledger's trimmed start is thrown away first); records appended live meanwhile are kept.
   */
  loadPartition(partition: number, store: Store): Promise<number | undefined> {
    this.checkPartition(partition);
    return this.load(partitionObject(partition), store, (line, n) => {
      if (line.t !== 'record') throw new BadLine(n, `a ${line.t} in a partition's snapshot`);
      if (convPartition(line.entry.conv, this.partitions) !== partition) throw new BadLine(n, `a record of ${line.entry.conv}, which is not of partition ${partition}`);
    }, (line) => {
      if (line.t !== 'record') return;
      const { offset, ...entry } = line.entry;
      store.log.append(entry, offset);
    });
  }

  /** Writes every actor state (but the node's own, `cluster:`) and membership in `store` as `shared`, covering the ledger through `seq`. As writePartition. */
  writeShared(seq: number, store: Store): Promise<Written | undefined> {
    const tally: Tally = { count: 0 };
    return this.write(SHARED_OBJECT, seq, tally, sharedLines(store, tally));
  }

  /**
   * Puts every state and joins every membership of `shared` into `store`. Resolves with the ledger
   * sequence it covers, or undefined if there is none. It adds and replaces, never removes: load into
   * a store with no states or memberships from before (a fresh replica).
   */
  loadShared(store: Store): Promise<number | undefined> {
    return this.load(SHARED_OBJECT, store, (line, n) => {
      if (line.t === 'record') throw new BadLine(n, 'a record in the shared snapshot');
    }, (line) => {
      if (line.t === 'state') store.states.put(line.address, line.state);
      else if (line.t === 'member') store.positions.join(line.m.account, line.m.conv, line.m.since);
    });
  }

  /**
   * The ledger sequence every snapshot covers: the lowest over `shared` and every partition's,
   * undefined if one is missing (or of another format or partition count). From the objects'
   * metadata, nothing downloaded.
   */
  async covered(): Promise<number | undefined> {
    const seqs = await this.listed();
    let min = seqs.get(SHARED_OBJECT);
    for (let p = 0; p < this.partitions && min !== undefined; p++) {
      const seq = seqs.get(partitionObject(p));
      min = seq === undefined ? undefined : Math.min(min, seq);
    }
    return min;
  }

  /** The sequence each snapshot there covers, by object name (undefined: of another format or partition count). */
  async listed(): Promise<Map<string, number | undefined>> {
    return new Map((await this.engine.objects.list()).map((info) => [info.name, this.seqOf(info)]));
  }

  /**
   * Removes the ledger's entries with a sequence below `below` (a purge: the stream denies deleting
   * single entries, not purging); how many went. Refused (RangeError) above what every snapshot
   * covers: `trimLedger(covered + 1)` at most.
   */
  async trimLedger(below: number): Promise<number> {
    const covered = await this.covered();
    if (!Number.isSafeInteger(below) || below < 1 || covered === undefined || below > covered + 1) {
      throw new RangeError(`the ledger is trimmed only below what every snapshot covers (${covered === undefined ? 'not every snapshot is written' : `through ${covered}`}), not below ${below}`);
    }
    const stream = this.engine.names.stream;
    if (below <= (await this.engine.jsm.streams.info(stream)).state.first_seq) return 0;
    const { purged } = await this.engine.jsm.streams.purge(stream, { seq: below });
    this.log.info({ below, purged }, 'ledger trimmed below what the snapshots cover');
    return purged;
  }

  private checkPartition(p: number): void {
    if (!Number.isSafeInteger(p) || p < 0 || p >= this.partitions) throw new RangeError(`partition ${p}: not one of 0..${this.partitions - 1}`);
  }

  /** The sequence an object's metadata says it covers, if it is of this format and partition count. */
  private seqOf(info: { metadata?: Record<string, string> }): number | undefined {
    const m = info.metadata;
    if (m?.format !== FORMAT || m.partitions !== String(this.partitions) || m.seq === undefined || !/^\d{1,15}$/.test(m.seq)) return undefined;
    return Number(m.seq);
  }

  private async write(object: string, seq: number, tally: Tally, pieces: AsyncGenerator<string>): Promise<Written | undefined> {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`snapshot ${object}: ledger sequence ${seq} is no sequence`);
    const objects = this.engine.objects;
    const old = await objects.info(object);
    const had = old === null || old.deleted ? undefined : this.seqOf(old);
    if (had !== undefined && had >= seq) {
      await pieces.return(undefined);
      this.log.debug({ object, seq, had }, 'snapshot not written: the one there covers as much');
      return undefined;
    }
    const t0 = Date.now();
    try {
      const meta = { name: object, metadata: { seq: String(seq), partitions: String(this.partitions), format: FORMAT } };
      const info = await objects.put(meta, readable(pieces), { previousRevision: old?.revision ?? 0 });
      this.log.info({ object, seq, count: tally.count, bytes: info.size, ms: Date.now() - t0 }, 'snapshot written');
      return { object, seq, count: tally.count, bytes: info.size };
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamWrongLastSequence) throw err;
      this.log.info({ object, seq }, 'snapshot not written: another write replaced the object meanwhile');
      return undefined;
    }
  }

  /**
   * Applies an object's lines to `store`, a chunk at a time: `check` every line of the chunk first
   * (it throws a BadLine), then `apply` them. Resolves with the sequence the object covers.
   */
  private async load(object: string, store: Store, check: (line: Line, n: number) => void, apply: (line: Line) => void): Promise<number | undefined> {
    const info = await this.engine.objects.info(object);
    if (info === null || info.deleted) return undefined;
    const seq = this.seqOf(info);
    if (seq === undefined) throw new SnapshotError(object, `its metadata ${JSON.stringify(info.metadata ?? {})} is not of format ${FORMAT} with ${this.partitions} partitions`);
    const t0 = Date.now();
    let n = 0;
    let count: number | undefined;
    let flushed = 0;
    try {
      for await (const texts of this.lines(object, info)) {
        const page: Line[] = [];
        for (const text of texts) {
          n++;
          if (count !== undefined) throw new BadLine(n, 'a line after the count line');
          const line = parseLine(text, n);
          if (line.t === 'count') count = line.count;
          else check(line, n);
          page.push(line);
        }
        for (const line of page) apply(line);
        if (n - flushed >= FLUSH_EVERY) { await store.flush(); flushed = n; }
      }
      if (count === undefined) throw new SnapshotError(object, `it ends without its count line after ${n} lines (cut short): refused; ${LEFT}`);
      if (count !== n - 1) throw new SnapshotError(object, `its count line says ${count} lines, it holds ${n - 1}: refused; ${LEFT}`);
    } catch (err) {
      if (!(err instanceof BadLine)) throw err;
      throw new SnapshotError(object, `${err.message}: refused, nothing of its chunk applied; ${LEFT}`, { cause: err });
    }
    await store.flush();
    this.log.info({ object, seq, count, ms: Date.now() - t0 }, 'snapshot loaded');
    return seq;
  }

  /**
   * The object's text as lines, a chunk's worth at a time: split at its last newline byte (never
   * part of a longer UTF-8 character), the rest carried to the next chunk.
   */
  private async *lines(object: string, info: ObjectInfo): AsyncGenerator<string[]> {
    let rest = Buffer.alloc(0);
    for await (const chunk of this.chunks(object, info)) {
      const end = chunk.lastIndexOf(NEWLINE);
      if (end < 0) {
        rest = Buffer.concat([rest, chunk]);
        if (rest.length > MAX_LINE) throw new SnapshotError(object, `a line longer than ${MAX_LINE} bytes: refused; ${LEFT}`);
        continue;
      }
      const text = Buffer.concat([rest, chunk.subarray(0, end)]);
      rest = Buffer.from(chunk.subarray(end + 1));
      if (!isUtf8(text)) throw new SnapshotError(object, `it is not UTF-8 text: refused; ${LEFT}`);
      yield text.toString('utf8').split('\n');
      await turn();
    }
    if (rest.length > 0) throw new SnapshotError(object, `its last line is cut short: refused; ${LEFT}`);
  }

  /**
   * The object's chunks in order, a few asked for at a time, checked against its digest at the end.
   * Read from the object store's stream directly (its layout is NATS's ADR-20: `OBJ_<bucket>`,
   * chunks on `$O.<bucket>.C.<nuid>`): the client's `get` pushes every chunk without waiting for the
   * reader, which would hold a large object in memory while the store applies it.
   */
  private async *chunks(object: string, info: ObjectInfo): AsyncGenerator<Uint8Array> {
    const bucket = this.engine.names.snapshotsBucket;
    const sha = createHash('sha256');
    let got = 0;
    if (info.chunks > 0) {
      const consumer = await this.engine.js.consumers.get(`OBJ_${bucket}`, { filter_subjects: `$O.${bucket}.C.${info.nuid}` });
      while (got < info.chunks) {
        let batch = 0;
        for await (const m of await consumer.fetch({ max_messages: Math.min(CHUNKS_AT_ONCE, info.chunks - got), expires: FETCH_EXPIRES_MS })) {
          sha.update(m.data);
          got++;
          batch++;
          yield m.data;
        }
        if (batch === 0) throw new SnapshotError(object, `only ${got} of its ${info.chunks} chunks could be read (replaced or removed meanwhile?)`);
      }
    }
    const want = info.digest.startsWith('SHA-256=') ? Buffer.from(info.digest.slice(8), 'base64url') : undefined;
    if (want === undefined || !want.equals(sha.digest())) {
      throw new SnapshotError(object, `its bytes do not match its digest ${info.digest}: what was applied from it may be wrong; drop the records it gave before filling them in again`);
    }
  }
}

/** The pieces of text as a byte stream the object store pulls from: the next piece only when it asks, after a turn of the event loop. */
function readable(pieces: AsyncGenerator<string>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        await turn();
        const next = await pieces.next();
        if (next.done === true) return controller.close();
        if (next.value.length > 0) return controller.enqueue(encoder.encode(next.value));
      }
    },
    async cancel() { await pieces.return(undefined); },
  }, { highWaterMark: 0 });
}
