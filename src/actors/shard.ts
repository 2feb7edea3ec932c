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
import { Code } from '../protocol/codes';
import { errorFrame } from '../protocol/frames';
import type { Batch, Control, Evict, FromShard, GroupCall, Loaded, ToShard, VerifyCall } from './envelopes';
import { partitionOf } from '../hash';
import { decideGroup, type Decision } from './group';
import { applyGroup, groupRecordFault, type GroupRecord } from './group-state';
import type { ShardConfig } from './shard-config';
import { VERIFY_ADDRESS, Verifier, type VerifierState } from './verifier';

const cfg = workerData as ShardConfig;
setLogLevel(cfg.logLevel);
const log = logger({ shard: cfg.index });

/** How long a broken group answers errors before its state is read from the store again. */
const BROKEN_RETRY_MS = 60_000;
/** How often the refusals of broken groups and failed verifier calls are summed up in the log. */
const FAILURE_SUMMARY_MS = 60_000;

interface Broken { since: number; reason: string; refused: number }

/**
 * Failures that repeat are logged once at error (per key: a group id, a verifier op) and then
 * counted; the counts since the last summary go out in one warn line per interval.
 */
class FailureLog {
  private readonly reported = new Set<string>();
  private readonly repeats = new Map<string, number>();

  constructor() {
    const t = setInterval(() => this.summary(), FAILURE_SUMMARY_MS);
    t.unref();
  }

  /** Logs the first failure of `key`; later ones are counted for the summary. */
  failed(key: string, fields: Record<string, unknown>, msg: string): void {
    if (!this.reported.has(key)) {
      this.reported.add(key);
      log.error(fields, msg);
      return;
    }
    this.repeat(key);
  }

  repeat(key: string): void { this.repeats.set(key, (this.repeats.get(key) ?? 0) + 1); }

  private summary(): void {
    if (this.repeats.size === 0) return;
    let total = 0;
    for (const n of this.repeats.values()) total += n;
    const counts = Object.fromEntries([...this.repeats].slice(0, 20));
    log.warn({ refused: total, keys: this.repeats.size, counts }, 'requests answered with an error since the last summary (each failure was logged once at error)');
    this.repeats.clear();
  }
}

class Shard {
  /**
   * Resident groups. A group quiet for `groupIdleMs`, or pushed out by `groupsResident`, leaves
   * memory (its state is in the store); its next message brings it back.
   */
  private readonly groups: LRUCache<string, GroupRecord>;
  /**
   * Groups with a `load` out (how many): their calls go out with the loads and come back with the
   * state, so that they are decided in arrival order and stay in flight until decided.
   */
  private readonly loading = new Map<string, number>();
  /**
   * Groups whose stored state is not a group record, or whose decision threw (a bug): not
   * resident, and every call answers an error until `BROKEN_RETRY_MS` passed; the thread and
   * every other group go on.
   */
  private readonly broken = new Map<string, Broken>();
  private readonly failures = new FailureLog();
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
      case 'verify': return this.onVerify(item, out);
      case 'evict': return this.onEvict(item);
    }
  }

  /** Cluster mode: partitions gained or lost. Their actors come back from the store on their next call. */
  private onEvict(item: Evict): void {
    const gone = new Set(item.partitions);
    for (const id of [...this.groups.keys()]) if (gone.has(partitionOf(groupAddress(id), cfg.partitions))) this.groups.delete(id);
    if (gone.has(partitionOf(VERIFY_ADDRESS, cfg.partitions))) {
      this.verifier = item.verifierState === undefined ? undefined : new Verifier(cfg.verify, item.verifierState as VerifierState);
    }
  }

  private onVerify(item: VerifyCall, out: FromShard[]): void {
    // The verifier applies its own decisions; what changed is stored whole.
    const posts: FromShard[] = [];
    let events;
    try {
      events = this.verify().decide(item, posts);
    } catch (err) {
      // A bug in one call: its requester (if any) hears an error, the thread goes on.
      this.failures.failed(`verify:${item.op}`, { err, op: item.op }, 'verification call failed');
      if (item.op === 'reg' || item.op === 'proof') {
        out.push({ t: 'reply', conn: item.conn, frame: errorFrame(Code.INTERNAL, 'this request could not be processed; the operators were told', item.request) });
      }
      return;
    }
    if (events.length > 0) out.push({ t: 'state', address: VERIFY_ADDRESS, state: this.verify().state() });
    out.push(...posts);
  }

  private onGroup(call: GroupCall, out: FromShard[]): void {
    if (this.isBroken(call.id)) return this.refuseBroken(call, out);
    if (this.loading.has(call.id) || !this.groups.has(call.id)) {
      const address = groupAddress(call.id);
      const last = out[out.length - 1];
      // Calls of one batch for the same group share a load.
      if (last?.t === 'load' && last.address === address) return void last.calls.push(call);
      this.loading.set(call.id, (this.loading.get(call.id) ?? 0) + 1);
      out.push({ t: 'load', address, calls: [call] });
      return;
    }
    this.decide(call, out);
  }

  private onLoaded(item: Loaded, out: FromShard[]): void {
    const id = item.address.slice('group:'.length);
    const n = this.loading.get(id) ?? 0;
    if (n <= 1) this.loading.delete(id); else this.loading.set(id, n - 1);
    if (item.state !== undefined && !this.groups.has(id) && !this.isBroken(id)) {
      const fault = groupRecordFault(item.state, id);
      if (fault === undefined) this.groups.set(id, item.state as GroupRecord);
      else this.markBroken(id, fault, {});
    }
    for (const call of item.calls) this.decide(call, out);
  }

  /** The one place a group's state changes: decide, apply, and hand the new state over with the posts. */
  private decide(call: GroupCall, out: FromShard[]): void {
    const r = call.origin.request;
    // Test-only fault switch: a request that kills the thread every time it is decided.
    if (cfg.testFaults && r.act === 'chat' && r.msg === '__crash_shard__') throw new Error('fault switch: poison request');
    if (this.isBroken(call.id)) return this.refuseBroken(call, out);
    const before = this.groups.get(call.id);
    let state: FromShard | undefined;
    let decided: Decision;
    try {
      decided = decideGroup(before, call, cfg.limits);
      if (decided.events.length > 0) {
        const members = new Set(before?.group ?? []);
        let g = before;
        for (const ev of decided.events) g = applyGroup(g, ev);
        const now = new Set(g?.group ?? []);
        state = {
          t: 'state',
          address: groupAddress(call.id),
          state: g,
          conv: groupConv(call.id),
          joined: [...now].filter((a) => !members.has(a)),
          left: [...members].filter((a) => !now.has(a)),
        };
        if (g) this.groups.set(call.id, g);
        else this.groups.delete(call.id);
      }
    } catch (err) {
      // Not a refusal: a bug, or a state no decision can read. The resident state may be half
      // changed, so it goes; nothing of this decision leaves the shard.
      this.markBroken(call.id, 'a decision failed', { err, act: r.act });
      return this.refuseBroken(call, out);
    }
    if (state) out.push(state);
    out.push(...decided.out);
  }

  private isBroken(id: string): boolean {
    const b = this.broken.get(id);
    if (!b) return false;
    if (Date.now() - b.since < BROKEN_RETRY_MS) return true;
    // Time to read it again (the store may have been repaired, or the bug not hit again).
    this.broken.delete(id);
    return false;
  }

  private markBroken(id: string, reason: string, fields: Record<string, unknown>): void {
    this.groups.delete(id);
    this.broken.set(id, { since: Date.now(), reason, refused: 0 });
    this.failures.failed(`group:${id}`, { ...fields, group: id, reason }, 'group is broken: its requests answer an error');
  }

  private refuseBroken(call: GroupCall, out: FromShard[]): void {
    const b = this.broken.get(call.id);
    if (b) b.refused++;
    this.failures.repeat(`group:${call.id}`);
    const { origin } = call;
    out.push({ t: 'reply', conn: origin.conn, frame: errorFrame(Code.INTERNAL, 'this group could not be read; the operators were told', origin.request) });
  }

  private onControl(op: Control['op'], out: FromShard[]): void {
    if (op === 'shutdown') return; // handled by the message loop
    if (op === 'crash') {
      if (!cfg.testFaults) return;
      // Test-only fault switch: dies the way a bug would, with the batch half processed.
      throw new Error('fault switch: shard crash requested');
    }
    for (const id of [...this.broken.keys()]) this.isBroken(id); // drops the expired
    out.push({ t: 'stats', groups: this.groups.size, processed: this.processed, brokenGroups: this.broken.size, broken: [...this.broken.keys()].slice(0, 20) });
  }
}

/** Marks what an actor decided with its partition (cluster mode writes a partition's output as its owner). */
function tagPartition(item: ToShard, out: FromShard[], from: number): void {
  const address = item.t === 'group' ? groupAddress(item.id) : item.t === 'loaded' ? item.address : item.t === 'verify' ? VERIFY_ADDRESS : undefined;
  if (address === undefined) return;
  const part = partitionOf(address, cfg.partitions);
  for (let i = from; i < out.length; i++) {
    const o = out[i]!;
    if (o.t === 'post' || o.t === 'state' || o.t === 'reply') o.part = part;
  }
}

function main(): void {
  const port = parentPort!;
  const shard = new Shard();
  port.on('message', (batch: Batch<ToShard>) => {
    const out: FromShard[] = [];
    for (const item of batch.items) {
      const from = out.length;
      shard.handle(item, out);
      if (out.length > from) tagPartition(item, out, from);
    }
    port.postMessage({ id: batch.id, items: out } satisfies Batch<FromShard>);
    if (batch.items.some((i) => i.t === 'control' && i.op === 'shutdown')) port.postMessage({ closed: true });
  });
  port.postMessage({ ready: true });
  log.debug({ index: cfg.index }, 'shard ready');
}

main();
