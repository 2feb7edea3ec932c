/**
 * A node's part of the cluster's store: a local store (LMDB in `<data>/cluster-<name>`, a cache
 * that can be thrown away) kept by applying the ledger: every state and membership, and the records
 * of the partitions this node keeps (stored-partitions.ts), with the cluster's epoch and with account
 * positions in the engine. The ledger sequence it applied through is kept in it, written in the
 * same transaction as what it applied, so a restarted node replays from there; a replica of another
 * epoch (the stream was made anew) is thrown away and rebuilt from the start.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../store/open';
import type { ActorStates, ConversationLog, Store, StoreHealth, StoreStats } from '../store/ports';
import type { EnginePositions } from './positions';

const APPLIED = 'cluster:applied';

interface AppliedMark { epoch: string; seq: number }

export class Replica implements Store {
  readonly log: ConversationLog;
  readonly states: ActorStates;

  private constructor(private readonly local: Store, readonly epoch: string, readonly positions: EnginePositions) {
    this.log = local.log;
    this.states = local.states;
  }

  /** The replica for `epoch` in `dir`, and the ledger sequence it applied through (0: start over). */
  static async open(opts: { dir: string; backend: 'lmdb' | 'memory'; epoch: string; firstSeq: number; positions: (local: Store) => EnginePositions }): Promise<{ replica: Replica; applied: number }> {
    let local = await openStore({ backend: opts.backend, dir: opts.dir, fsync: 'off' });
    const mark = local.states.get(APPLIED) as AppliedMark | undefined;
    // Of another ledger, or behind where the ledger now starts (trimmed below its snapshots while
    // this node was away): thrown away, and made again from the snapshots and the ledger.
    const usable = mark !== undefined && mark.epoch === opts.epoch && mark.seq + 1 >= opts.firstSeq;
    if (mark !== undefined && !usable) {
      await local.close();
      rmSync(join(opts.dir, 'store'), { recursive: true, force: true });
      local = await openStore({ backend: opts.backend, dir: opts.dir, fsync: 'off' });
    }
    const applied = usable ? mark.seq : 0;
    return { replica: new Replica(local, opts.epoch, opts.positions(local)), applied };
  }

  /** Records that everything through `seq` is applied (in the same write as it). */
  appliedThrough(seq: number): void { this.local.states.put(APPLIED, { epoch: this.epoch, seq } satisfies AppliedMark); }

  flush(): Promise<void> { return this.local.flush(); }

  backup(): Promise<void> {
    return Promise.reject(new Error('a cluster is backed up from JetStream: node dist/src/tools/cluster-admin.js backup DEST (see docs/operations.md)'));
  }

  stats(): StoreStats { return { ...this.local.stats(), backend: `jetstream (replica: ${this.local.stats().backend})`, epoch: this.epoch }; }
  health(): StoreHealth { return this.local.health(); }
  onHealth(listener: (h: StoreHealth) => void): void { this.local.onHealth(listener); }
  probe(): boolean { return this.local.probe(); }
  close(): Promise<void> { return this.local.close(); }
}
