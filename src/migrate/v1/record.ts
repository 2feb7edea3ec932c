/**
 * Journal record framing: `[u32 LE payload length][u32 LE crc32][payload]`, payload = UTF-8 JSON
 * `{"lsn":<n>,"data":<record>}`.
 *
 * The crc covers the length bytes and the payload, so a damaged length is caught as well as a
 * damaged payload. A process that dies mid-write leaves a short last record (header or payload cut)
 * which the scanner reports as the end of the good prefix; a flipped byte fails the crc.
 * Records are framed whole in one buffer and written with one write, so any byte prefix of a
 * journal is a sequence of whole records followed by at most one partial record.
 */
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import { readAtSync } from '../../store/fsutil';

export const HEADER_BYTES = 8;
/** Larger lengths are treated as damage: no event of this service comes near it. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

export interface JournalRecord {
  lsn: number;
  data: unknown;
}

/** Frames one record. Throws when `data` is not JSON-serialisable (e.g. undefined, BigInt, a cycle). */
export function encodeRecord(lsn: number, data: unknown): Buffer {
  const json = JSON.stringify({ lsn, data });
  if (json === undefined || data === undefined) throw new TypeError(`journal record ${lsn} is not JSON data`);
  const payloadLen = Buffer.byteLength(json, 'utf8');
  if (payloadLen > MAX_PAYLOAD_BYTES) throw new RangeError(`journal record ${lsn} is ${payloadLen} bytes (max ${MAX_PAYLOAD_BYTES})`);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + payloadLen);
  buf.writeUInt32LE(payloadLen, 0);
  buf.write(json, HEADER_BYTES, 'utf8');
  buf.writeUInt32LE(frameCrc(buf, payloadLen, HEADER_BYTES), 4);
  return buf;
}

/** crc32 over the 4 length bytes at `start - 8` and the payload at `start`. */
function frameCrc(buf: Buffer, payloadLen: number, start: number): number {
  const c = crc32(buf.subarray(start - HEADER_BYTES, start - 4));
  return crc32(buf.subarray(start, start + payloadLen), c);
}

export interface ScanResult {
  records: JournalRecord[];
  /** Bytes of whole, valid records from the start of the file. */
  goodBytes: number;
  /** Why scanning stopped before the end of the file; undefined when the whole file was good. */
  problem?: string;
}

const CHUNK = 1 << 20;

/**
 * Reads the records of the first `size` bytes of `fd`, in chunks (segments can be large), until the
 * end or the first bad record. `firstLsn` is the lsn the first record must carry; every later one
 * must be its predecessor + 1, so a record from elsewhere (or a stale sector) is caught too.
 */
export function scanRecords(fd: number, size: number, firstLsn: number): ScanResult {
  const records: JournalRecord[] = [];
  let buf = Buffer.alloc(0);
  let bufStart = 0; // file offset of buf[0]
  let off = 0; // file offset of the record being read
  let expect = firstLsn;

  // Makes bytes [off, off + need) available in buf; false when the file ends first.
  const ensure = (need: number): boolean => {
    const bufEnd = bufStart + buf.length;
    if (bufEnd >= off + need) return true;
    if (off + need > size) return false;
    const keep = buf.subarray(off - bufStart);
    const want = Math.min(Math.max(CHUNK, off + need - bufEnd), size - bufEnd);
    const more = Buffer.allocUnsafe(want);
    const got = readAtSync(fd, more, want, bufEnd);
    buf = Buffer.concat([keep, more.subarray(0, got)]);
    bufStart = off;
    return bufStart + buf.length >= off + need;
  };

  while (off < size) {
    if (!ensure(HEADER_BYTES)) return { records, goodBytes: off, problem: `partial header at byte ${off}` };
    const h = off - bufStart;
    const len = buf.readUInt32LE(h);
    const crc = buf.readUInt32LE(h + 4);
    if (len > MAX_PAYLOAD_BYTES) return { records, goodBytes: off, problem: `implausible length ${len} at byte ${off}` };
    if (!ensure(HEADER_BYTES + len)) return { records, goodBytes: off, problem: `partial record at byte ${off} (${len} bytes announced, ${size - off - HEADER_BYTES} present)` };
    const p = off - bufStart + HEADER_BYTES;
    if (frameCrc(buf, len, p) !== crc) return { records, goodBytes: off, problem: `crc mismatch at byte ${off}` };
    let rec: unknown;
    try {
      rec = JSON.parse(buf.toString('utf8', p, p + len));
    } catch {
      return { records, goodBytes: off, problem: `bad JSON at byte ${off}` };
    }
    const r = rec as Partial<JournalRecord> | null;
    if (r === null || typeof r !== 'object' || r.lsn !== expect || !('data' in r)) {
      return { records, goodBytes: off, problem: `unexpected record at byte ${off} (want lsn ${expect}, got ${String(r?.lsn)})` };
    }
    records.push({ lsn: expect, data: r.data });
    expect++;
    off += HEADER_BYTES + len;
  }
  return { records, goodBytes: off };
}

/** Scans a whole file by name (used by tests and tools). */
export function scanFile(file: string, firstLsn: number): ScanResult & { size: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    return { ...scanRecords(fd, size, firstLsn), size };
  } finally {
    fs.closeSync(fd);
  }
}
