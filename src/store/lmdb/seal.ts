/**
 * The checksum every stored value carries (LMDB keeps none): a value is written as
 *
 *   [0xC1][FORMAT][crc32, 4 bytes little-endian][payload]
 *
 * where the CRC-32 covers the record's key (as a seed: the CRC-32 of the key, codecs.ts, so a value
 * that a flipped bit moves under another key fails too) and the payload. 0xC1 is the one byte msgpack never uses and is no
 * UTF-8 lead byte, so a value of the format before (msgpack, or JSON text for states) never starts
 * with it: the migration (format.ts) tells old values from new ones by it.
 *
 * Cost: one CRC-32 (zlib's, table-driven) over a few hundred bytes per write and read, about
 * 100 ns; the payload is written once into the buffer that carries the header.
 */
import { crc32 } from 'node:zlib';

export const MARKER = 0xc1;
/** The format of the sealed values (stored in meta as 'format' once every value has it). */
export const FORMAT = 2;
export const HEADER = 6;

/** A buffer with room for the header and `payload` bytes; the payload goes from HEADER on. */
export function sealable(payload: number): Buffer {
  return Buffer.allocUnsafe(HEADER + payload);
}

/** Writes the header over the first HEADER bytes of `buf` (the payload is `buf[HEADER..end]`). */
export function seal(buf: Buffer, seed: number): Buffer {
  buf[0] = MARKER;
  buf[1] = FORMAT;
  buf.writeUInt32LE(crc32(buf.subarray(HEADER), seed), 2);
  return buf;
}

/** The payload of a sealed value if its checksum holds for `seed`; undefined: damaged (or not sealed). */
export function unseal(buf: Buffer, seed: number): Buffer | undefined {
  if (!isSealed(buf)) return undefined;
  const body = buf.subarray(HEADER);
  return crc32(body, seed) === buf.readUInt32LE(2) ? body : undefined;
}

/** Whether the value is of the sealed format (its checksum not looked at). */
export function isSealed(buf: Buffer): boolean {
  return buf.length >= HEADER && buf[0] === MARKER && buf[1] === FORMAT;
}
