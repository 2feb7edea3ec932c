/**
 * One turn's writes as one buffer: what the socket thread hands to the writer (thread-committer.ts)
 * in a single message, transferred rather than copied. Values arrive encoded and sealed (codecs.ts),
 * so the writer only puts bytes; keys are carried as the strings and numbers they are made of and
 * given to lmdb-js as keys again on the other side, so both sides share one key format (schema.ts).
 *
 * An operation: [u8 db][u8 key parts: 0 a string key, n an array of n][parts][i32 value length, -1 a
 * removal][value]. A part: [u8 0][u32 byte length][UTF-8] for a string, [u8 1][f64] for a number.
 */
import type { Database, Key } from 'lmdb';
import { DB_NAMES, type DbName, type Dbs } from './schema';

export type BatchKey = string | readonly (string | number)[];

const DB_INDEX: Record<DbName, number> = Object.fromEntries(DB_NAMES.map((n, i) => [n, i])) as Record<DbName, number>;
const FIRST_SIZE = 64 * 1024;

/**
 * A buffer of its own ArrayBuffer (outside Node's shared pool), so it can be transferred to another
 * thread; not zero-filled, every byte used is written.
 */
function ownBuffer(size: number): Buffer { return Buffer.allocUnsafeSlow(size); }

export class BatchWriter {
  private buf = ownBuffer(FIRST_SIZE);
  /** A buffer handed back by the writer after a commit, used for the next batch. */
  private spare: ArrayBuffer | undefined;
  private pos = 0;
  /** Operations written since the last `take`. */
  count = 0;

  get bytes(): number { return this.pos; }

  put(db: DbName, key: BatchKey, value: Uint8Array): void {
    this.head(db, key, value.length + 4);
    this.buf.writeInt32LE(value.length, this.pos);
    this.buf.set(value, this.pos + 4);
    this.pos += 4 + value.length;
  }

  remove(db: DbName, key: BatchKey): void {
    this.head(db, key, 4);
    this.buf.writeInt32LE(-1, this.pos);
    this.pos += 4;
  }

  /**
   * The operations written so far: a view of the batch's own buffer, which goes with it (transferred
   * to the writer thread); the next batch is written into the spare the writer handed back, or a new
   * buffer. Two buffers take turns, so the busy path neither copies a batch nor touches new memory.
   */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    const spare = this.spare;
    this.spare = undefined;
    this.buf = spare !== undefined ? Buffer.from(spare) : ownBuffer(FIRST_SIZE);
    this.pos = 0;
    this.count = 0;
    return out;
  }

  /** A batch's buffer, back from the writer: the next batch may use it. */
  recycle(buffer: ArrayBuffer): void {
    if (buffer.byteLength > 0) this.spare = buffer;
  }

  /** Drops what was written (a turn lost before it was handed over). */
  clear(): void {
    this.pos = 0;
    this.count = 0;
  }

  private head(db: DbName, key: BatchKey, rest: number): void {
    this.count++;
    if (typeof key === 'string') {
      this.room(2 + 5 + 3 * key.length + rest);
      this.buf[this.pos++] = DB_INDEX[db];
      this.buf[this.pos++] = 0;
      this.str(key);
      return;
    }
    let need = 2 + rest;
    for (const part of key) need += typeof part === 'string' ? 5 + 3 * part.length : 9;
    this.room(need);
    this.buf[this.pos++] = DB_INDEX[db];
    this.buf[this.pos++] = key.length;
    for (const part of key) {
      if (typeof part === 'string') this.str(part);
      else {
        this.buf[this.pos++] = 1;
        this.buf.writeDoubleLE(part, this.pos);
        this.pos += 8;
      }
    }
  }

  private str(s: string): void {
    this.buf[this.pos] = 0;
    const n = this.buf.write(s, this.pos + 5, 'utf8');
    this.buf.writeUInt32LE(n, this.pos + 1);
    this.pos += 5 + n;
  }

  /** Grows the buffer (doubling) to hold `n` more bytes. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = ownBuffer(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

/** One operation read back from a batch. */
export interface BatchOp {
  db: DbName;
  key: Key;
  /** undefined: a removal. */
  value: Buffer | undefined;
}

/** The operations of a batch, in the order they were written. */
export function* readBatch(batch: Buffer): Generator<BatchOp> {
  let pos = 0;
  const str = (): string => {
    const n = batch.readUInt32LE(pos + 1);
    const s = batch.toString('utf8', pos + 5, pos + 5 + n);
    pos += 5 + n;
    return s;
  };
  while (pos < batch.length) {
    const db = DB_NAMES[batch[pos]!];
    if (db === undefined) throw new Error(`write batch: unknown database ${batch[pos]} at byte ${pos}`);
    const parts = batch[pos + 1]!;
    pos += 2;
    let key: Key;
    if (parts === 0) key = str();
    else {
      const arr: (string | number)[] = [];
      for (let i = 0; i < parts; i++) {
        if (batch[pos] === 1) {
          arr.push(batch.readDoubleLE(pos + 1));
          pos += 9;
        } else arr.push(str());
      }
      key = arr;
    }
    const len = batch.readInt32LE(pos);
    pos += 4;
    let value: Buffer | undefined;
    if (len >= 0) {
      value = batch.subarray(pos, pos + len);
      pos += len;
    }
    yield { db, key, value };
  }
}

/** Puts and removes a batch's operations; runs inside the caller's write transaction. */
export function applyBatch(dbs: Dbs, batch: Buffer): number {
  let n = 0;
  for (const op of readBatch(batch)) {
    const db = dbs[op.db] as unknown as Database<Buffer, Key>;
    if (op.value === undefined) db.removeSync(op.key);
    else db.putSync(op.key, op.value);
    n++;
  }
  return n;
}
