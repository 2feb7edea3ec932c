/**
 * The value formats of schema.ts, each sealed with its checksum (seal.ts), and the seed of each
 * database's key the checksum covers. `decode` answers undefined for a value that fails its
 * checksum or does not parse: the caller reports it as damaged (damage.ts) and never serves it.
 *
 * Payloads are small fixed layouts (numbers as float64, strings as UTF-8 with a length) rather than
 * msgpack: the log's frames are strings already, written once into the sealed buffer, and read back
 * with one `toString` each.
 */
import type { AccountPositions, ConvId, ConvTop } from '../ports';
import { HEADER, seal, sealable, unseal } from './seal';
import type { LogValue } from './schema';

export interface Codec<T> {
  encode(v: T, seed: string): Buffer;
  decode(buf: Buffer, seed: string): T | undefined;
}

// ---- the seeds: one string per key, distinct across databases ----

export const seeds = {
  log: (conv: ConvId, offset: number): string => `log\n${conv}\n${offset}`,
  convs: (conv: ConvId): string => `convs\n${conv}`,
  mids: (conv: ConvId, from: string, mid: string): string => `mids\n${conv}\n${from}\n${mid}`,
  positions: (account: string): string => `positions\n${account}`,
  members: (account: string, conv: ConvId): string => `members\n${account}\n${conv}`,
  states: (address: string): string => `states\n${address}`,
  meta: (name: string): string => `meta\n${name}`,
};

/** A string's length field that stands for null. */
const NULL_LEN = 0xffffffff;

/** Runs a decoder on a payload that passed its checksum; a payload that does not parse is damaged too. */
function parsed<T>(buf: Buffer, seed: string, read: (p: Buffer) => T | undefined): T | undefined {
  const p = unseal(buf, seed);
  if (p === undefined) return undefined;
  try {
    return read(p);
  } catch {
    return undefined;
  }
}

/** A log record: at (f64), from and mid (u32 length or NULL_LEN, UTF-8), head (u32 length, UTF-8), tail (the rest). */
export const logCodec: Codec<LogValue> = {
  encode([at, from, mid, head, tail], seed) {
    const fromLen = from === null ? 0 : Buffer.byteLength(from);
    const midLen = mid === null ? 0 : Buffer.byteLength(mid);
    const headLen = Buffer.byteLength(head);
    const buf = sealable(8 + 12 + fromLen + midLen + headLen + Buffer.byteLength(tail));
    let o = buf.writeDoubleLE(at, HEADER);
    o = buf.writeUInt32LE(from === null ? NULL_LEN : fromLen, o);
    if (from !== null) o += buf.write(from, o);
    o = buf.writeUInt32LE(mid === null ? NULL_LEN : midLen, o);
    if (mid !== null) o += buf.write(mid, o);
    o = buf.writeUInt32LE(headLen, o);
    o += buf.write(head, o);
    buf.write(tail, o);
    return seal(buf, seed);
  },
  decode(buf, seed) {
    return parsed(buf, seed, (p) => {
      const r = new Reader(p);
      const at = r.f64();
      const from = r.str();
      const mid = r.str();
      const head = r.str();
      if (head === null) return undefined;
      return [at, from, mid, head, r.rest()];
    });
  },
};

/** Reads the layout of logCodec; throws past the end (a damaged length that the checksum missed). */
class Reader {
  private o = 0;
  constructor(private readonly p: Buffer) {}
  f64(): number { const v = this.p.readDoubleLE(this.o); this.o += 8; return v; }
  str(): string | null {
    const n = this.p.readUInt32LE(this.o);
    this.o += 4;
    if (n === NULL_LEN) return null;
    if (this.o + n > this.p.length) throw new RangeError('length past the end');
    const s = this.p.toString('utf8', this.o, this.o + n);
    this.o += n;
    return s;
  }
  rest(): string { return this.p.toString('utf8', this.o); }
}

/** Numbers as float64 each (offsets stay below 2^53). */
function numbersCodec<T>(n: number, to: (v: T) => number[], from: (xs: number[]) => T): Codec<T> {
  return {
    encode(v, seed) {
      const buf = sealable(8 * n);
      to(v).forEach((x, i) => buf.writeDoubleLE(x, HEADER + 8 * i));
      return seal(buf, seed);
    },
    decode(buf, seed) {
      return parsed(buf, seed, (p) => {
        if (p.length !== 8 * n) return undefined;
        const xs: number[] = [];
        for (let i = 0; i < n; i++) xs.push(p.readDoubleLE(8 * i));
        return from(xs);
      });
    },
  };
}

export const numberCodec: Codec<number> = numbersCodec(1, (v) => [v], (xs) => xs[0]!);

export const topCodec: Codec<ConvTop> = numbersCodec(3, (t) => [t.first, t.last, t.count], ([first, last, count]) => ({ first: first!, last: last!, count: count! }));

/** ackMode as 0 or 1 in a third number: one layout for all. */
export const positionsCodec: Codec<AccountPositions> = numbersCodec(3, (p) => [p.delivered, p.acked, p.ackMode ? 1 : 0],
  ([delivered, acked, ack]) => ({ delivered: delivered!, acked: acked!, ackMode: ack === 1 }));

/** UTF-8 text (a state's JSON, the epoch). */
export const textCodec: Codec<string> = {
  encode(text, seed) {
    const buf = sealable(Buffer.byteLength(text));
    buf.write(text, HEADER);
    return seal(buf, seed);
  },
  decode(buf, seed) {
    return parsed(buf, seed, (p) => p.toString('utf8'));
  },
};

/** A state (JSON text), parsed: undefined if damaged, or if it passed its checksum but does not parse. */
export function decodeState(buf: Buffer, seed: string): { value: unknown } | undefined {
  const text = textCodec.decode(buf, seed);
  if (text === undefined) return undefined;
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}
