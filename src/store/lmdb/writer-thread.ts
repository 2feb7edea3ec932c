/**
 * The store's writer thread (started by thread-committer.ts): it opens the same LMDB environment
 * (lmdb-js shares one environment between the threads of a process), and for each batch it is
 * sent puts and removes its operations in one write transaction, commits it and, under
 * `--fsync grouped` and `always`, syncs it, off the socket thread. The outcome goes back on the
 * results port, and the shared counter is bumped so that a socket thread blocked in `wait()` wakes.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { open } from 'lmdb';
import { envOptions, envSync } from './durability';
import { GroupSync } from './group-sync';
import { openDbs } from './schema';
import { applyBatch } from './write-batch';
import type { WriterData, WriterRequest, WriterResult } from './writer-protocol';

const data = workerData as WriterData;
const results: MessagePort = data.results;
const signal = new Int32Array(data.signal);
const root = open(envOptions(data.envDir, data.fsync));
const dbs = openDbs(root);

function reply(r: WriterResult): void {
  results.postMessage(r, r.buffer !== undefined ? [r.buffer] : []);
  // After the post: a thread woken by the counter finds the result on its port.
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

function failed(id: number, e: unknown): void {
  const err = e as { message?: unknown; code?: unknown } | null;
  const code = typeof err?.code === 'string' || typeof err?.code === 'number' ? err.code : undefined;
  reply({ id, phase: 'done', error: { message: String(err?.message ?? e), code } });
}

/**
 * One fsync for the batches committed before it starts (group-sync.ts): mdb_env_sync on a libuv
 * thread, so this thread goes on committing meanwhile, and the batches committed during a sync
 * share the next. Batches are done in their order.
 */
const syncs = new GroupSync(envSync(root));

/**
 * Under 'grouped' a batch is synced after it committed, and done only then. The socket thread
 * hands over its next batch as soon as this one has committed, so the turns that end during a
 * commit share the next transaction, and the batches that commit during an fsync share the next
 * fsync. ('always' syncs inside the commit; 'off' never.)
 */
function commit(id: number, buffer: ArrayBuffer, length: number): void {
  try {
    root.transactionSync(() => applyBatch(dbs, Buffer.from(buffer, 0, length)));
  } catch (e) {
    failed(id, e);
    return;
  }
  // LMDB copied the values: the buffer goes back for a later batch.
  if (data.fsync !== 'grouped') {
    reply({ id, phase: 'done', buffer });
    return;
  }
  reply({ id, phase: 'committed', buffer });
  syncs.request().then(() => reply({ id, phase: 'done' }), (err: unknown) => failed(id, err));
}

parentPort!.on('message', (m: WriterRequest) => {
  if (m.kind === 'commit') commit(m.id, m.buffer, m.length);
  else if (m.kind === 'crash') throw new Error('the store writer thread was asked to crash (a test)');
  else if (m.kind === 'close') {
    void root.close().finally(() => {
      results.close();
      parentPort!.close();
    });
  }
});
