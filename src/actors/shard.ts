/**
 * A shard: the worker thread that hosts the group actors (and the verification actor) of the
 * partitions placed on it. It takes batches from its mailbox, lets each actor decide in turn and
 * answers with one batch of output per batch taken. It keeps no files: an actor's state comes
 * from the store through the node (asked for with `load` when the actor is not resident), and a
 * decision's new state goes back with its posts, stored by the delivery actor in one write with
 * them. Actors here are virtual: one exists as soon as a message names it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LRUCache } from 'lru-cache';
import { logger, setLogLevel } from '../log';
import { groupConv } from '../store/ports';
import { groupAddress } from './address';
import type { Batch, Control, FromShard, GroupCall, Loaded, ToShard } from './envelopes';
import { decideGroup } from './group';
import { applyGroup, type GroupRecord } from './group-state';
import type { ShardConfig } from './shard-config';
import { VERIFY_ADDRESS, Verifier } from './verifier';

const cfg = workerData as ShardConfig;
setLogLevel(cfg.logLevel);
const log = logger({ shard: cfg.index });

class Shard {
  /**
   * Resident groups. A group quiet for `groupIdleMs`, or pushed out by `groupsResident`, leaves
   * memory (its state is in the store); its next message brings it back.
   */
  private readonly groups: LRUCache<string, GroupRecord>;
  /** Calls for groups being loaded, in arrival order. */
  private readonly loading = new Map<string, GroupCall[]>();
  private processed = 0;
  private verifier: Verifier | undefined;

  constructor() {
    this.groups = new LRUCache<string, GroupRecord>({ max: cfg.groupsResident, ttl: cfg.groupIdleMs, updateAgeOnGet: true });
    const sweep = setInterval(() => this.groups.purgeStale(), Math.min(cfg.groupIdleMs, 30_000));
    sweep.unref();
    if (cfg.verifierState) this.verifier = new Verifier(cfg.verify, cfg.verifierState);
  }

  private verify(): Verifier {
    this.verifier ??= new Verifier(cfg.verify);
    return this.verifier;
  }

  handle(item: ToShard, out: FromShard[]): void {
    this.processed++;
    switch (item.t) {
      case 'group': return this.onGroup(item, out);
      case 'loaded': return this.onLoaded(item, out);
      case 'control': return this.onControl(item.op, out);
      case 'verify': {
        // The verifier applies its own decisions; what changed is stored whole.
        const posts: FromShard[] = [];
        const events = this.verify().decide(item, posts);
        if (events.length > 0) out.push({ t: 'state', address: VERIFY_ADDRESS, state: this.verify().state() });
        out.push(...posts);
        return;
      }
    }
  }

  private onGroup(call: GroupCall, out: FromShard[]): void {
    const waiting = this.loading.get(call.id);
    if (waiting) return void waiting.push(call);
    if (!this.groups.has(call.id)) {
      this.loading.set(call.id, [call]);
      out.push({ t: 'load', address: groupAddress(call.id) });
      return;
    }
    this.decide(call, out);
  }

  private onLoaded(item: Loaded, out: FromShard[]): void {
    const id = item.address.slice('group:'.length);
    const calls = this.loading.get(id) ?? [];
    this.loading.delete(id);
    if (item.state !== undefined && !this.groups.has(id)) this.groups.set(id, item.state as GroupRecord);
    for (const call of calls) this.decide(call, out);
  }

  /** The one place a group's state changes: decide, apply, and hand the new state over with the posts. */
  private decide(call: GroupCall, out: FromShard[]): void {
    const before = this.groups.get(call.id);
    const decision = decideGroup(before, call, cfg.limits);
    if (decision.events.length > 0) {
      const members = new Set(before?.group ?? []);
      let g = before;
      for (const ev of decision.events) g = applyGroup(g, ev);
      if (g) this.groups.set(call.id, g);
      else this.groups.delete(call.id);
      const now = new Set(g?.group ?? []);
      out.push({
        t: 'state',
        address: groupAddress(call.id),
        state: g,
        conv: groupConv(call.id),
        joined: [...now].filter((a) => !members.has(a)),
        left: [...members].filter((a) => !now.has(a)),
      });
    }
    out.push(...decision.out);
  }

  private onControl(op: Control['op'], out: FromShard[]): void {
    if (op === 'shutdown') return; // handled by the message loop
    if (op === 'crash') {
      if (!cfg.testFaults) return;
      // Test-only fault switch: dies the way a bug would, with the batch half processed.
      throw new Error('fault switch: shard crash requested');
    }
    out.push({ t: 'stats', groups: this.groups.size, processed: this.processed });
  }
}

function main(): void {
  const port = parentPort!;
  const shard = new Shard();
  port.on('message', (batch: Batch<ToShard>) => {
    const out: FromShard[] = [];
    for (const item of batch.items) shard.handle(item, out);
    port.postMessage({ id: batch.id, items: out } satisfies Batch<FromShard>);
    if (batch.items.some((i) => i.t === 'control' && i.op === 'shutdown')) port.postMessage({ closed: true });
  });
  port.postMessage({ ready: true });
  log.debug({ index: cfg.index }, 'shard ready');
}

main();
