/**
 * The value formats of schema.ts, each sealed with its checksum (seal.ts), and the seed of each
 * database's key the checksum covers. `decode` answers undefined for a value that fails its
 * checksum or does not parse: the caller reports it as damaged (damage.ts) and never serves it.
 *
 * Payloads are small fixed layouts (numbers as float64, strings as UTF-8 with a length) rather than
 * msgpack: the log's frames are strings already, written once into the sealed buffer, and read back
 * with one `toString` each.
 */
import { crc32 } from 'node:zlib';
import type { AccountPositions, ConvId, ConvTop } from '../ports';
import { HEADER, seal, sealable, unseal } from './seal';
import type { LogValue } from './schema';

export interface Codec<T> {
  encode(v: T, seed: number): Buffer;
  decode(buf: Buffer, seed: number): T | undefined;
}

// ---- the seeds: the CRC-32 of each key, distinct across databases ----

/**
 * CRC-32s of the strings of one kind, remembered (bounded): the conversations and accounts of the
 * busy path recur, so a write or read pays for its key's CRC once in a while, not every time.
 */
class SeedCache {
  private readonly base: number;
  private readonly known = new Map<string, number>();
  constructor(tag: string) { this.base = crc32(`${tag}\n`); }
  of(s: string): number {
    let c = this.known.get(s);
    if (c === undefined) {
      if (this.known.size >= 4096) this.known.clear();
      c = crc32(s, this.base);
      this.known.set(s, c);
    }
    return c;
  }
}

const numberScratch = Buffer.allocUnsafe(8);

/** `crc` continued over the number `n` (as float64). */
function withNumber(crc: number, n: number): number {
  numberScratch.writeDoubleLE(n, 0);
  return crc32(numberScratch, crc);
}

const cached = {
  log: new SeedCache('log'), convs: new SeedCache('convs'), mids: new SeedCache('mids'),
  positions: new SeedCache('positions'), members: new SeedCache('members'),
};
const STATES = crc32('states\n');
const META = crc32('meta\n');

export const seeds = {
  log: (conv: ConvId, offset: number): number => withNumber(cached.log.of(conv), offset),
  convs: (conv: ConvId): number => cached.convs.of(conv),
  mids: (conv: ConvId, from: string, mid: string): number => crc32(`${from}\n${mid}`, cached.mids.of(conv)),
  positions: (account: string): number => cached.positions.of(account),
  members: (account: string, conv: ConvId): number => crc32(conv, cached.members.of(account)),
  states: (address: string): number => crc32(address, STATES),
  meta: (name: string): number => crc32(name, META),
};

/** A string's length field that stands for null. */
const NULL_LEN = 0xffffffff;

/** Runs a decoder on a payload that passed its checksum; a payload that does not parse is damaged too. */
function parsed<T>(buf: Buffer, seed: number, read: (p: Buffer) => T | undefined): T | undefined {
  const p = unseal(buf, seed);
  if (p === undefined) return undefined;
  try {
    return read(p);
  } catch {
    return undefined;
  }
}

/** Where log records are encoded: reused, so a record costs no allocation (LMDB copies it at `putSync`). */
let scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * A log record: at (f64), from and mid (u32 length or NULL_LEN, UTF-8), head (u32 length, UTF-8),
 * tail (the rest). `encode` answers a view of a buffer it reuses: valid until its next call, so it
 * is put at once (inside the transaction), never kept.
 */
export const logCodec: Codec<LogValue> = {
  encode([at, from, mid, head, tail], seed) {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const max = HEADER + 20 + 3 * ((from?.length ?? 0) + (mid?.length ?? 0) + head.length + tail.length);
    if (scratch.length < max) scratch = Buffer.allocUnsafe(Math.max(max, 2 * scratch.length));
    const b = scratch;
    let o = b.writeDoubleLE(at, HEADER);
    o = putString(b, o, from);
    o = putString(b, o, mid);
    o = putString(b, o, head);
    o += b.write(tail, o);
    return seal(b.subarray(0, o), seed);
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

/** A length (or NULL_LEN) and the string's UTF-8 at `o`; answers the offset after it. */
function putString(b: Buffer, o: number, s: string | null): number {
  if (s === null) return b.writeUInt32LE(NULL_LEN, o);
  const n = b.write(s, o + 4);
  b.writeUInt32LE(n, o);
  return o + 4 + n;
}

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
export function decodeState(buf: Buffer, seed: number): { value: unknown } | undefined {
  const text = textCodec.decode(buf, seed);
  if (text === undefined) return undefined;
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}
