/**
 * A shard: the worker thread that hosts the group actors (and the verification actor) of the
 * partitions it owns. Inbox actors live on the main thread, beside the sockets (inbox-host.ts).
 * It takes batches from its mailbox, lets each actor decide in turn, records their events
 * (journal), and answers with one batch of output per batch taken, released only once the
 * events are durable. Actors here are virtual: one exists as soon as a message names it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { logger, setLogLevel } from '../log';
import type { Batch, Control, FromShard, GroupCall, Import, ToShard } from './envelopes';
import { decideGroup } from './group';
import { applyGroup, type GroupRecord } from './group-state';
import { groupAddress } from '../supervisor/placement';
import type { Persistence, ShardConfig } from './persistence';
import { StorePersistence } from '../store/shard-persistence';
import { ColdStore } from '../store/cold';
import { LRUCache } from 'lru-cache';
import { VERIFY_ADDRESS, Verifier, type VerifierEvent, type VerifierState } from './verifier';

const cfg = workerData as ShardConfig;
setLogLevel(cfg.logLevel);
const log = logger({ shard: cfg.index });

class Shard {
  /**
   * Resident groups. A group quiet for `groupIdleMs`, or pushed out by `groupsResident`, is written
   * to cold storage and leaves memory; its next message brings it back (a virtual actor).
   */
  private readonly groups: LRUCache<string, GroupRecord>;
  private readonly cold = new ColdStore(cfg.dataDir, cfg.partitions);
  private coldCount: number;
  private processed = 0;
  private verifier: Verifier | undefined;

  constructor(private readonly store: Persistence) {
    this.coldCount = this.cold.count(cfg.partitionsOwned);
    this.groups = new LRUCache<string, GroupRecord>({
      max: cfg.groupsResident,
      ttl: cfg.groupIdleMs,
      updateAgeOnGet: true,
      dispose: (g, id, reason) => {
        if (reason !== 'evict' && reason !== 'expire') return;
        this.cold.write(groupAddress(id), g);
        this.coldCount++;
      },
    });
    const sweep = setInterval(() => this.groups.purgeStale(), Math.min(cfg.groupIdleMs, 30_000));
    sweep.unref();
  }

  /** The group's state: resident, or brought back from cold storage (undefined: no such group). */
  private group(id: string): GroupRecord | undefined {
    const g = this.groups.get(id);
    if (g) return g;
    const cold = this.cold.read(groupAddress(id)) as GroupRecord | undefined;
    if (cold) {
      this.groups.set(id, cold);
      this.coldCount--;
    }
    return cold;
  }

  /** Rebuilds actor state from what the store restored (snapshot, then journal tail). */
  restore(): void {
    for (const [address, ev] of this.store.restored()) this.apply(address, ev as never);
  }

  snapshot(): Record<string, unknown> {
    return Object.fromEntries([
      ...(this.verifier ? [[VERIFY_ADDRESS, this.verifier.state()] as const] : []),
      ...[...this.groups].map(([id, g]) => [groupAddress(id), g] as const),
    ]);
  }

  loadSnapshot(states: Record<string, unknown>): void {
    for (const [address, state] of Object.entries(states)) {
      if (address.startsWith('group:')) this.groups.set(address.slice(6), state as GroupRecord);
      else if (address === VERIFY_ADDRESS) this.verifier = new Verifier(cfg.verify, state as VerifierState);
    }
  }

  /** The one place actor state changes: apply, then journal. */
  private apply(address: string, ev: unknown): void {
    if (address === VERIFY_ADDRESS) return this.verify().apply(ev as VerifierEvent);
    const id = address.slice(6);
    const next = applyGroup(this.group(id), ev as never);
    if (next) this.groups.set(id, next);
    else {
      this.groups.delete(id);
      // A destroyed group must not come back from an older cold copy.
      this.cold.remove(groupAddress(id));
    }
  }

  private commit(address: string, events: unknown[]): void {
    for (const ev of events) {
      this.apply(address, ev);
      this.store.record(address, ev);
    }
  }

  private verify(): Verifier {
    this.verifier ??= new Verifier(cfg.verify);
    return this.verifier;
  }

  handle(item: ToShard, out: FromShard[]): void {
    this.processed++;
    switch (item.t) {
      case 'group': return this.onGroup(item, out);
      case 'control':
        return this.onControl(item.op, out);
      case 'import':
        return this.onImport(item);
      case 'verify':
        // The verifier applies its own decisions; here they are only journaled.
        for (const ev of this.verify().decide(item, out)) this.store.record(VERIFY_ADDRESS, ev);
        return;
    }
  }

  /** Imported groups never overwrite a live one. */
  private onImport(item: Import): void {
    if (!this.group(item.group.id)) this.commit(groupAddress(item.group.id), [{ e: 'created', record: item.group }]);
  }

  private onGroup(call: GroupCall, out: FromShard[]): void {
    const decision = decideGroup(this.group(call.id), call, cfg.limits);
    this.commit(groupAddress(call.id), decision.events);
    out.push(...decision.out);
  }

  private onControl(op: Control['op'], out: FromShard[]): void {
    if (op === 'shutdown') return; // handled by the message loop, after the batch is durable
    if (op === 'crash') {
      if (!cfg.testFaults) return;
      // Test-only fault switch: dies the way a bug would, with the batch half processed.
      throw new Error('fault switch: shard crash requested');
    }
    out.push({ t: 'stats', groups: this.groups.size, coldGroups: Math.max(0, this.coldCount), processed: this.processed, persistence: this.store.stats() });
  }
}

async function main(): Promise<void> {
  const port = parentPort!;
  const store = await StorePersistence.open(cfg);
  const shard = new Shard(store);
  const snap = store.snapshotStates();
  if (snap) shard.loadSnapshot(snap);
  shard.restore();
  store.onCheckpointDue(() => shard.snapshot());

  // Output leaves in the order batches came in, each only after its events are durable.
  let released: Promise<void> = Promise.resolve();
  port.on('message', (batch: Batch<ToShard>) => {
    const out: FromShard[] = [];
    for (const item of batch.items) shard.handle(item, out);
    const durable = store.flush();
    released = released
      .then(() => durable)
      .then(() => port.postMessage({ id: batch.id, items: out } satisfies Batch<FromShard>))
      .catch((err: unknown) => {
        // Output that cannot be made durable must not be released: die, and be restarted from disk.
        log.fatal({ err }, 'journal write failed');
        process.exit(1);
      });
    if (batch.items.some((i) => i.t === 'control' && i.op === 'shutdown')) {
      released = released
        .then(() => store.checkpoint(shard.snapshot()))
        .then(() => store.close())
        .then(() => port.postMessage({ closed: true }));
    }
  });
  port.postMessage({ ready: true });
  log.debug({ partitions: cfg.partitionsOwned }, 'shard ready');
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'shard failed to start');
  process.exit(1);
});
