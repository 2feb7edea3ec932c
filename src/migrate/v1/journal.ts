/**
 * The append-only journal of one partition: a directory of segment files `journal-<firstLsn>.log`,
 * each a sequence of framed records (see record.ts) with consecutive log sequence numbers (lsn).
 *
 * Why segments: a checkpoint makes every record up to its lsn redundant; rotating to a new segment
 * at each checkpoint lets the old records go by deleting whole files instead of rewriting one.
 *
 * Why synchronous writes: the journal is owned by exactly one worker thread; `appendSync` returning
 * means the bytes are in the kernel, in order, and the caller can go on computing. Durability (fsync)
 * is a separate step whose cost is shared by many appends under the 'grouped' policy.
 *
 * Start-up never stops on a torn tail: a process killed mid-write leaves a partial last record,
 * which is cut off (with a warning) so that the next append continues after the last good record.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { logger, type Logger } from '../../log';
import { encodeRecord, scanRecords, type JournalRecord } from './record';
import { fsyncDir, listNumbered, padLsn, writeAllSync } from '../../store/fsutil';

/**
 * When an append counts as durable:
 * - 'always': fdatasync inside every append (slowest, simplest);
 * - 'grouped': group commit. A `flush()` (someone waits: an acknowledgement hangs on it) starts an
 *   fdatasync after `groupWindowMs` (default 1 ms) for company, or right after the one in flight,
 *   which then covers every append made meanwhile. Appends nobody waits for are synced within
 *   `groupLazyMs` (default 50 ms), so a server relaying messages live does not pay one fdatasync
 *   per turn (the profile showed that kernel time costing more than everything else);
 * - 'off': never fsync on append (data reaches the kernel; survives a process crash, not a power loss).
 */
export type FsyncPolicy = 'always' | 'grouped' | 'off';

export interface JournalOptions {
  dir: string;
  fsync: FsyncPolicy;
  /** 'grouped': how long a flush waits for company before its fdatasync. Default 1 ms. */
  groupWindowMs?: number;
  /** 'grouped': longest time an append nobody waits for stays unsynced. Default 50 ms. */
  groupLazyMs?: number;
  /** 'grouped': this many unsynced records start the fdatasync at once. Default 512. */
  groupMaxRecords?: number;
  /** Records with lsn <= afterLsn are not returned by open (a snapshot already covers them). */
  afterLsn?: number;
  log?: Logger;
}

interface Segment {
  firstLsn: number;
  file: string;
  bytes: number;
}

interface Waiter {
  lsn: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

const SEGMENT_RE = /^journal-(\d{20})\.log$/;

export function segmentName(firstLsn: number): string {
  return `journal-${padLsn(firstLsn)}.log`;
}

/** Segment files of `dir`, oldest first (names sort numerically thanks to the zero padding). */
export function listSegments(dir: string): { firstLsn: number; name: string }[] {
  return listNumbered(dir, SEGMENT_RE).map(({ n, name }) => ({ firstLsn: n, name }));
}

export class Journal {
  readonly dir: string;
  readonly policy: FsyncPolicy;
  private readonly windowMs: number;
  private readonly lazyMs: number;
  /** The armed timer is the short flush window (someone waits), not the lazy one. */
  private timerIsWindow = false;
  private readonly maxRecords: number;
  private readonly log: Logger;

  private segments: Segment[];
  private fd: number;
  /** lsn of the last record written (0 before the first record ever). */
  private lastLsn: number;
  /** lsn up to which an fdatasync has completed. */
  private syncedLsn: number;
  private unsynced = 0;
  private timer: NodeJS.Timeout | undefined;
  private inflight = false;
  private waiters: Waiter[] = [];
  /** fds of rotated segments whose close waits for an in-flight fdatasync on them. */
  private retired: number[] = [];
  private failed: Error | undefined;
  private closed = false;

  private constructor(opts: JournalOptions, segments: Segment[], lastLsn: number, log: Logger) {
    this.dir = opts.dir;
    this.policy = opts.fsync;
    this.windowMs = opts.groupWindowMs ?? 1;
    this.lazyMs = opts.groupLazyMs ?? 50;
    this.maxRecords = opts.groupMaxRecords ?? 512;
    this.log = log;
    this.segments = segments;
    this.lastLsn = lastLsn;
    this.syncedLsn = lastLsn; // what open read back is on disk as far as we can tell
    const cur = segments[segments.length - 1]!;
    this.fd = fs.openSync(path.join(this.dir, cur.file), 'a');
  }

  /**
   * Opens (or creates) the journal in `opts.dir`, repairs a torn tail and returns the records after
   * `opts.afterLsn`, in lsn order.
   */
  static open(opts: JournalOptions): { journal: Journal; records: JournalRecord[] } {
    const log = opts.log ?? logger({ component: 'journal', dir: opts.dir });
    const afterLsn = opts.afterLsn ?? 0;
    fs.mkdirSync(opts.dir, { recursive: true });
    const found = listSegments(opts.dir);
    const segments: Segment[] = [];
    const records: JournalRecord[] = [];
    let lastLsn = afterLsn;

    for (let i = 0; i < found.length; i++) {
      const seg = found[i]!;
      const next = found[i + 1];
      const file = path.join(opts.dir, seg.name);
      // A segment whose every record is covered by the snapshot is not read: it is only kept for a
      // fallback to an older snapshot, and is read then.
      if (next !== undefined && next.firstLsn - 1 <= afterLsn) {
        segments.push({ firstLsn: seg.firstLsn, file: seg.name, bytes: fs.statSync(file).size });
        lastLsn = next.firstLsn - 1;
        continue;
      }
      if (segments.length > 0 || records.length > 0) {
        if (seg.firstLsn !== lastLsn + 1) {
          log.error({ segment: seg.name, expectedFirstLsn: lastLsn + 1 }, 'journal segments are not contiguous; later segments set aside');
          setAside(opts.dir, found.slice(i), log);
          break;
        }
      }
      const fd = fs.openSync(file, 'r+');
      let stop = false;
      try {
        const size = fs.fstatSync(fd).size;
        const scan = scanRecords(fd, size, seg.firstLsn);
        for (const r of scan.records) if (r.lsn > afterLsn) records.push(r);
        if (scan.problem !== undefined) {
          // The good prefix is kept; the damaged bytes are cut so that appends continue after it.
          const last = next === undefined;
          (last ? log.warn.bind(log) : log.error.bind(log))(
            { segment: seg.name, problem: scan.problem, keptBytes: scan.goodBytes, droppedBytes: size - scan.goodBytes, records: scan.records.length },
            last ? 'journal: torn or corrupt tail cut off' : 'journal: corrupt record inside the journal; it and everything after it set aside',
          );
          fs.ftruncateSync(fd, scan.goodBytes);
          fs.fsyncSync(fd);
          stop = !last;
        }
        segments.push({ firstLsn: seg.firstLsn, file: seg.name, bytes: scan.goodBytes });
        lastLsn = seg.firstLsn - 1 + scan.records.length;
      } finally {
        fs.closeSync(fd);
      }
      if (stop) {
        setAside(opts.dir, found.slice(i + 1), log);
        break;
      }
    }

    if (segments.length === 0) {
      // Fresh journal (or one that starts right after a snapshot): its first record is afterLsn + 1.
      const name = segmentName(lastLsn + 1);
      fs.closeSync(fs.openSync(path.join(opts.dir, name), 'a'));
      fsyncDir(opts.dir);
      segments.push({ firstLsn: lastLsn + 1, file: name, bytes: 0 });
    }
    return { journal: new Journal(opts, segments, lastLsn, log), records };
  }

  /** lsn of the last record appended (0 when none ever was). */
  get lsn(): number {
    return this.lastLsn;
  }

  /** lsn up to which records are known durable. */
  get durableLsn(): number {
    return this.policy === 'off' ? this.lastLsn : this.syncedLsn;
  }

  /** Sum of the sizes of all segment files. */
  get bytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.bytes;
    return n;
  }

  /** First lsn of every segment, oldest first. */
  segmentFirstLsns(): number[] {
    return this.segments.map((s) => s.firstLsn);
  }

  /**
   * Writes `records` (one write call) and returns the lsn of the last one. They are in the kernel
   * when this returns; under 'always' they are also on disk. Throws if a record is not JSON data
   * (then nothing is written) or on an I/O error (then the partial write is cut off again).
   */
  appendSync(records: readonly unknown[]): number {
    this.check();
    if (records.length === 0) return this.lastLsn;
    const bufs = records.map((r, i) => encodeRecord(this.lastLsn + 1 + i, r));
    const buf = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
    const cur = this.segments[this.segments.length - 1]!;
    try {
      writeAllSync(this.fd, buf);
    } catch (e) {
      // A half-written record in the middle of the journal would hide every later record from the
      // reader; cut it off now, or refuse further appends if that fails too.
      try {
        fs.ftruncateSync(this.fd, cur.bytes);
      } catch (e2) {
        this.fail(e2 as Error);
      }
      throw e;
    }
    cur.bytes += buf.length;
    this.lastLsn += records.length;
    if (this.policy === 'always') {
      this.syncNow();
    } else if (this.policy === 'grouped') {
      this.unsynced += records.length;
      this.schedule();
    }
    return this.lastLsn;
  }

  /** appendSync, then resolves once the records are durable per the policy. */
  append(records: readonly unknown[]): Promise<number> {
    const lsn = this.appendSync(records);
    return this.flush().then(() => lsn);
  }

  /**
   * Resolves when every record appended before the call is durable per the policy ('off':
   * immediately). Rejects if the fdatasync fails; the journal then refuses further appends, since
   * after a failed fsync the kernel may have dropped the dirty pages.
   */
  flush(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.policy === 'off' || this.syncedLsn >= this.lastLsn) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ lsn: this.lastLsn, resolve, reject });
      if (!this.inflight && !this.timerIsWindow) {
        if (this.timer !== undefined) clearTimeout(this.timer);
        this.timerIsWindow = true;
        this.timer = setTimeout(() => this.startSync(), this.windowMs);
      }
    });
  }

  /**
   * Starts a new segment at lsn + 1 (no-op when the current one is still empty). The finished
   * segment is fdatasynced first, so that every segment but the last is complete on disk.
   */
  rotate(): void {
    this.check();
    const cur = this.segments[this.segments.length - 1]!;
    if (this.lastLsn < cur.firstLsn) return;
    this.syncNow();
    this.openSegment(this.lastLsn + 1);
  }

  /**
   * Makes the next record lsn + 1 = `lsn` + 1 when the journal is behind (a snapshot survived a
   * power loss that the journal's unsynced tail did not). Numbers are never reused.
   */
  skipTo(lsn: number): void {
    this.check();
    if (lsn <= this.lastLsn) return;
    const cur = this.segments[this.segments.length - 1]!;
    if (this.lastLsn >= cur.firstLsn) this.syncNow();
    const emptyCurrent = this.lastLsn < cur.firstLsn;
    this.lastLsn = lsn;
    this.syncedLsn = lsn;
    this.openSegment(lsn + 1);
    if (emptyCurrent) {
      this.segments.splice(this.segments.length - 2, 1);
      fs.rmSync(path.join(this.dir, cur.file), { force: true });
      fsyncDir(this.dir);
    }
  }

  /** Deletes the segments whose records all have lsn <= `lsn` (never the current segment). */
  dropThrough(lsn: number): number {
    let dropped = 0;
    while (this.segments.length > 1 && this.segments[1]!.firstLsn - 1 <= lsn) {
      const old = this.segments.shift()!;
      fs.rmSync(path.join(this.dir, old.file), { force: true });
      dropped++;
    }
    if (dropped > 0) fsyncDir(this.dir);
    return dropped;
  }

  /** Waits for an in-flight fdatasync, syncs what is left and closes every file. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.inflight) await new Promise((r) => setImmediate(r));
    this.closed = true;
    try {
      if (this.failed === undefined && this.policy !== 'off' && this.syncedLsn < this.lastLsn) this.syncNow();
    } finally {
      fs.closeSync(this.fd);
      for (const fd of this.retired.splice(0)) fs.closeSync(fd);
      const err = this.failed ?? new Error('journal closed');
      for (const w of this.waiters.splice(0)) w.reject(err);
    }
  }

  private check(): void {
    if (this.failed !== undefined) throw this.failed;
    if (this.closed) throw new Error(`journal ${this.dir} is closed`);
  }

  private openSegment(firstLsn: number): void {
    const name = segmentName(firstLsn);
    const fd = fs.openSync(path.join(this.dir, name), 'a');
    fsyncDir(this.dir);
    if (this.inflight) this.retired.push(this.fd);
    else fs.closeSync(this.fd);
    this.fd = fd;
    this.segments.push({ firstLsn, file: name, bytes: 0 });
  }

  /** Synchronous fdatasync of the current segment, resolving every waiter. */
  private syncNow(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerIsWindow = false;
    try {
      fs.fdatasyncSync(this.fd);
    } catch (e) {
      this.fail(e as Error);
      throw e;
    }
    this.syncedLsn = this.lastLsn;
    this.unsynced = 0;
    this.resolveWaiters();
  }

  /** 'grouped': arranges for an fdatasync covering the records just written. */
  private schedule(): void {
    if (this.inflight) return; // the completion of the running sync starts the next one
    if (this.unsynced >= this.maxRecords) this.startSync();
    else if (this.timer === undefined) this.timer = setTimeout(() => this.startSync(), this.lazyMs);
  }

  private startSync(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerIsWindow = false;
    if (this.inflight || this.closed || this.failed !== undefined) return;
    if (this.syncedLsn >= this.lastLsn) {
      this.resolveWaiters();
      return;
    }
    const target = this.lastLsn;
    this.inflight = true;
    this.unsynced = 0;
    // Asynchronous on purpose: the worker keeps appending while the disk syncs; the next sync covers
    // everything that arrived meanwhile (group commit).
    fs.fdatasync(this.fd, (err) => {
      this.inflight = false;
      for (const fd of this.retired.splice(0)) fs.closeSync(fd);
      if (err) {
        this.fail(err);
        return;
      }
      if (target > this.syncedLsn) this.syncedLsn = target;
      this.resolveWaiters();
      if (this.syncedLsn < this.lastLsn && !this.closed) {
        // Someone waits for what came in meanwhile: sync again now; otherwise within the window.
        if (this.waiters.length > 0) this.startSync();
        else this.schedule();
      }
    });
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.lsn <= this.syncedLsn) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  private fail(err: Error): void {
    if (this.failed !== undefined) return;
    this.failed = err;
    this.log.error({ err }, 'journal: write or fsync failed; refusing further appends');
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

/** Renames segments that cannot be replayed to `*.orphan`, out of the journal but kept for an operator. */
function setAside(dir: string, segs: { name: string }[], log: Logger): void {
  for (const s of segs) {
    const from = path.join(dir, s.name);
    fs.renameSync(from, `${from}.orphan`);
    log.error({ segment: s.name }, 'journal: segment set aside as .orphan');
  }
  if (segs.length > 0) fsyncDir(dir);
}
