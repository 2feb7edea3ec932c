/** The one place that picks a store backend; the node and tools call this, never a backend directly. */
import type { Store } from './ports';
import { LmdbStore } from './lmdb/lmdb-store';
import { MemoryStore } from './memory/memory-store';

export interface OpenStoreOptions {
  backend: 'lmdb' | 'memory';
  /** The data directory (the LMDB environment goes to `<dir>/store`); unused by 'memory'. */
  dir: string;
  fsync: 'always' | 'grouped' | 'off';
  /** Where LMDB commits (default: its writer thread); unused by 'memory'. */
  writer?: 'thread' | 'inline';
}

export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  switch (opts.backend) {
    case 'lmdb':
      return LmdbStore.open({ dir: opts.dir, fsync: opts.fsync, ...(opts.writer !== undefined ? { writer: opts.writer } : {}) });
    case 'memory':
      return new MemoryStore();
  }
}
