/**
 * `Committer` on the store's writer thread (writer-thread.ts): a batch goes over in one message,
 * its buffer transferred, not copied; the outcome comes back on a port of its own. Normally it is
 * read by a listener, so the socket thread goes on meanwhile. `wait()` (a range read, a trim: they
 * must see every write made before them) reads it synchronously instead: it blocks on a shared
 * counter the writer bumps after each result (Atomics.wait), then takes the result off the port
 * (receiveMessageOnPort). Those reads are rare; the busy path never waits.
 *
 * A writer thread that dies (an uncaught error, a test's `crash`) fails the commit under way with a
 * StoreError 'writer': its writes are lost as on a full disk (nobody was acknowledged; the store
 * refuses writes until its probe commits again), and the next commit starts a new thread.
 */
import * as path from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { logger } from '../../log';
import { StoreError } from '../ports';
import type { CommitEvents, Committer } from './committer';
import type { LmdbFsync } from './durability';
import type { WriterData, WriterRequest, WriterResult } from './writer-protocol';

const WRITER_SCRIPT = path.join(__dirname, 'writer-thread.js');
/** How long `wait()` sleeps between looks at whether the thread is still alive. */
const WAIT_SLICE_MS = 50;

interface Writer {
  worker: Worker;
  results: MessagePort;
  signal: Int32Array;
  /** Why it stopped (set once the thread is gone). */
  stopped: string | undefined;
}

export class ThreadCommitter implements Committer {
  private writer: Writer | undefined;
  /**
   * The batches handed over and not done, oldest first, each with the thread it went to; only the
   * newest may not have committed.
   */
  private pending: { id: number; events: CommitEvents; committed: boolean; writer: Writer }[] = [];
  /** The writer syncs every batch before it is done (see writer-thread.ts). */
  readonly syncs = true;
  private nextId = 1;
  /** Writer threads started (for stats: more than one means one died). */
  started = 0;

  /** Starts the writer thread now, so that it is ready (its module loaded, the environment open) by the first commit. */
  constructor(private readonly envDir: string, private readonly fsync: LmdbFsync) {
    this.live();
  }

  commit(batch: Buffer, events: CommitEvents): void {
    const w = this.live();
    const id = this.nextId++;
    this.pending.push({ id, events, committed: false, writer: w });
    // Held open while a commit is under way: a process with nothing else to do waits for it.
    w.worker.ref();
    w.results.ref();
    // The batch's own buffer goes over (write-batch.ts), not a copy.
    const buffer = batch.buffer as ArrayBuffer;
    const msg: WriterRequest = { kind: 'commit', id, buffer, length: batch.length };
    w.worker.postMessage(msg, [buffer]);
  }

  wait(): void {
    this.block(() => this.pending.length > 0 && !this.pending.at(-1)!.committed);
  }

  /** Blocks this thread, taking results off the port, while `waiting()` holds. */
  private block(waiting: () => boolean): void {
    while (waiting()) {
      const w = this.writer!;
      const seen = Atomics.load(w.signal, 0);
      const m = receiveMessageOnPort(w.results) as { message: WriterResult } | undefined;
      if (m !== undefined) {
        this.result(m.message);
        continue;
      }
      // A thread that is gone has threadId -1 before its 'exit' event (which cannot run while we block).
      if (w.stopped !== undefined || w.worker.threadId === -1) {
        this.died(w, w.stopped ?? 'it exited');
        continue;
      }
      Atomics.wait(w.signal, 0, seen, WAIT_SLICE_MS);
    }
  }

  /** Tests only: the writer thread dies as on an uncaught error. */
  crashForTest(): void {
    this.writer?.worker.postMessage({ kind: 'crash' } satisfies WriterRequest);
  }

  async close(): Promise<void> {
    this.block(() => this.pending.length > 0);
    const w = this.writer;
    this.writer = undefined;
    if (w === undefined || w.stopped !== undefined) return;
    const exited = new Promise<void>((resolve) => w.worker.once('exit', () => resolve()));
    // Held open until it has closed its environment and ended.
    w.worker.ref();
    w.worker.postMessage({ kind: 'close' } satisfies WriterRequest);
    await exited;
  }

  /** The writer thread, started if there is none (the first commit, or after one died). */
  private live(): Writer {
    if (this.writer !== undefined && this.writer.stopped === undefined) return this.writer;
    const { port1, port2 } = new MessageChannel();
    const signal = new Int32Array(new SharedArrayBuffer(4));
    const data: WriterData = { envDir: this.envDir, fsync: this.fsync, results: port2, signal: signal.buffer as SharedArrayBuffer };
    const worker = new Worker(WRITER_SCRIPT, { workerData: data, transferList: [port2] });
    const w: Writer = { worker, results: port1, signal, stopped: undefined };
    port1.on('message', (r: WriterResult) => this.result(r));
    worker.on('error', (e) => {
      logger({ mod: 'lmdb-store' }).error({ err: e }, 'store writer thread failed');
      this.died(w, e instanceof Error ? e.message : String(e));
    });
    worker.on('exit', (code) => this.died(w, `it exited with code ${code}`));
    worker.unref();
    port1.unref();
    this.writer = w;
    this.started++;
    return w;
  }

  private result(r: WriterResult): void {
    const i = this.pending.findIndex((p) => p.id === r.id);
    if (i < 0) return;
    const p = this.pending[i]!;
    if (r.error === undefined && !p.committed) {
      p.committed = true;
      p.events.committed(r.buffer);
    }
    if (r.phase === 'committed') return;
    this.pending.splice(i, 1);
    if (this.pending.length === 0) {
      this.writer?.worker.unref();
      this.writer?.results.unref();
    }
    p.events.done(r.error === undefined ? undefined : Object.assign(new Error(r.error.message), { code: r.error.code }));
  }

  /** The thread is gone: the batches it had and did not finish failed; the next commit starts another. */
  private died(w: Writer, why: string): void {
    if (w.stopped === undefined) w.stopped = why;
    // The results it posted before it died are still on its port.
    for (let m = receiveMessageOnPort(w.results); m !== undefined; m = receiveMessageOnPort(w.results)) {
      this.result((m as { message: WriterResult }).message);
    }
    // A result may have handed the next batch over already, to a new thread: that one is not lost.
    const lost = this.pending.filter((p) => p.writer === w);
    if (lost.length === 0) return;
    this.pending = this.pending.filter((p) => p.writer !== w);
    // Committed but perhaps not synced: not acknowledged either way, so counted as lost.
    for (const p of lost) p.events.done(new StoreError(`the store's writer thread stopped (${why}); the writes of its commit are lost`, 'writer'));
  }
}
