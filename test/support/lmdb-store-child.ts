/**
 * Child process of the LMDB persistence test: appends records to a few conversations, forever,
 * three per turn, then awaits flush() and prints one JSON line per record it made durable:
 * {"offset":…,"conv":…,"head":…}. It is meant to be killed with SIGKILL.
 *
 *   node dist/test/support/lmdb-store-child.js <dir> <always|grouped|off>
 */
import { LmdbStore, type LmdbFsync } from '../../src/store/lmdb/lmdb-store';

async function main(): Promise<void> {
  const [dir, fsync] = process.argv.slice(2);
  if (dir === undefined || fsync === undefined) throw new Error('usage: lmdb-store-child DIR FSYNC');
  const store = LmdbStore.open({ dir, fsync: fsync as LmdbFsync });
  const convs = ['g:a', 'g:b', 'd:x:y'];
  const pad = 'p'.repeat(200);
  for (let i = 0; ; i++) {
    const made = convs.map((conv, k) => store.log.append({
      conv, at: Date.now(), from: 'x', mid: `m${process.pid}.${i}.${k}`, head: `{"pid":${process.pid},"i":${i},"k":${k},"pad":"${pad}"`, tail: '}',
    }));
    await store.flush();
    process.stdout.write(made.map((e) => JSON.stringify({ offset: e.offset, conv: e.conv, head: e.head, mid: e.mid })).join('\n') + '\n');
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`lmdb-store-child: ${String((e as Error).stack ?? e)}\n`);
  process.exit(1);
});
