/**
 * Partition snapshots: `snapshot-<lsn>.snap`, the whole state of a partition as of journal lsn `lsn`.
 *
 * File = one header line of JSON `{"format":"imgc-snapshot","version":1,"lsn","createdAt","bytes","crc32"}`,
 * a newline, then the state as JSON (`bytes` long, crc32 over exactly those bytes).
 *
 * Written atomically (temp file in the same directory, write, fsync, rename, fsync the directory),
 * so a crash leaves the old snapshot or the new one, never half of one. The lsn is both in the
 * name (ordering without reading) and in the header (checked against the name). The previous
 * snapshot is kept so that a newest one damaged on disk (bad crc, bad JSON) can be replaced by
 * the previous one plus a longer journal replay.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../../log';
import { fsyncDir, listNumbered, padLsn } from '../../store/fsutil';

const FORMAT = 'imgc-snapshot';
const VERSION = 1;
const SNAPSHOT_RE = /^snapshot-(\d{20})\.snap$/;

export interface SnapshotHeader {
  format: typeof FORMAT;
  version: number;
  lsn: number;
  createdAt: number;
  bytes: number;
  crc32: number;
}

export interface LoadedSnapshot {
  lsn: number;
  createdAt: number;
  state: unknown;
  file: string;
}

export class SnapshotCorruptError extends Error {
  constructor(file: string, why: string) {
    super(`snapshot ${file} is unusable: ${why}`);
    this.name = 'SnapshotCorruptError';
  }
}

export function snapshotName(lsn: number): string {
  return `snapshot-${padLsn(lsn)}.snap`;
}

/** Snapshots of `dir`, newest first. */
export function listSnapshots(dir: string): { lsn: number; name: string }[] {
  return listNumbered(dir, SNAPSHOT_RE).map(({ n, name }) => ({ lsn: n, name })).reverse();
}

/** Header + payload bytes of a snapshot of `json` (the state already serialised) at `lsn`. */
export function encodeSnapshot(lsn: number, json: string, createdAt = Date.now()): Buffer {
  const payload = Buffer.from(json, 'utf8');
  const header: SnapshotHeader = { format: FORMAT, version: VERSION, lsn, createdAt, bytes: payload.length, crc32: crc32(payload) };
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`, 'utf8'), payload]);
}

/**
 * Checks a snapshot's bytes (header, length, crc) and returns the header and the payload offset.
 * Throws SnapshotCorruptError. Parsing the payload JSON is left to the caller (backup only copies).
 */
export function verifySnapshot(buf: Buffer, file: string): { header: SnapshotHeader; payloadStart: number } {
  const nl = buf.indexOf(0x0a);
  if (nl < 0 || nl > 4096) throw new SnapshotCorruptError(file, 'no header line');
  let header: SnapshotHeader;
  try {
    header = JSON.parse(buf.toString('utf8', 0, nl)) as SnapshotHeader;
  } catch {
    throw new SnapshotCorruptError(file, 'header is not JSON');
  }
  if (header === null || typeof header !== 'object' || header.format !== FORMAT) throw new SnapshotCorruptError(file, 'not a snapshot header');
  if (header.version !== VERSION) throw new SnapshotCorruptError(file, `unknown version ${String(header.version)}`);
  const m = SNAPSHOT_RE.exec(path.basename(file));
  if (m !== null && Number(m[1]) !== header.lsn) throw new SnapshotCorruptError(file, `header lsn ${header.lsn} differs from the name`);
  const payloadStart = nl + 1;
  if (buf.length - payloadStart !== header.bytes) throw new SnapshotCorruptError(file, `length ${buf.length - payloadStart} instead of ${header.bytes}`);
  if (crc32(buf.subarray(payloadStart)) !== header.crc32) throw new SnapshotCorruptError(file, 'checksum mismatch');
  return { header, payloadStart };
}

/** Reads and fully checks one snapshot file. Throws SnapshotCorruptError (or an I/O error). */
export function readSnapshot(file: string): LoadedSnapshot {
  const buf = fs.readFileSync(file);
  const { header, payloadStart } = verifySnapshot(buf, file);
  let state: unknown;
  try {
    state = JSON.parse(buf.toString('utf8', payloadStart));
  } catch {
    throw new SnapshotCorruptError(file, 'payload is not JSON');
  }
  return { lsn: header.lsn, createdAt: header.createdAt, state, file };
}

/**
 * The newest snapshot of `dir` that passes its checks, or null when there is none. Damaged ones are
 * renamed `*.corrupt` (kept for an operator, out of the rotation so that pruning never keeps a
 * damaged snapshot in place of a good one).
 */
export function loadNewestSnapshot(dir: string, log: Logger): LoadedSnapshot | null {
  for (const s of listSnapshots(dir)) {
    const file = path.join(dir, s.name);
    try {
      return readSnapshot(file);
    } catch (e) {
      if (!(e instanceof SnapshotCorruptError)) throw e;
      log.error({ snapshot: s.name, err: e.message }, 'snapshot: unusable, falling back to the previous one and a longer journal replay');
      fs.renameSync(file, `${file}.corrupt`);
      fsyncDir(dir);
    }
  }
  return null;
}

/** Writes `snapshot-<lsn>.snap` atomically; resolves once it is durable (file and directory fsynced). */
export async function writeSnapshot(dir: string, lsn: number, json: string): Promise<{ file: string; bytes: number }> {
  const name = snapshotName(lsn);
  const file = path.join(dir, name);
  const tmp = `${file}.tmp`;
  const buf = encodeSnapshot(lsn, json);
  const fh = await fs.promises.open(tmp, 'w');
  try {
    await fh.writeFile(buf);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
  fsyncDir(dir);
  return { file, bytes: buf.length };
}

/** Deletes all but the `keep` newest snapshots; returns the lsns still kept, newest first. */
export function pruneSnapshots(dir: string, keep: number): number[] {
  const all = listSnapshots(dir);
  for (const s of all.slice(keep)) fs.rmSync(path.join(dir, s.name), { force: true });
  if (all.length > keep) fsyncDir(dir);
  return all.slice(0, keep).map((s) => s.lsn);
}

/** Removes temp files left by a snapshot write that a crash interrupted. */
export function removeSnapshotTemps(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith('snapshot-') && name.endsWith('.snap.tmp')) fs.rmSync(path.join(dir, name), { force: true });
  }
}
