/**
 * Shard supervision: the worker threads that host the group actors and the verifier, where a call
 * for one of them goes, what a shard asks of the node (an actor's stored state, `load`), its
 * figures, and what happens when one dies. The restart policy:
 * - within the restart budget the shard is started again; past it the service stops (a crash loop);
 * - what changes no group state (detail, chat, notice) is decided again by the new shard; a change
 *   may already be stored, so its requester is told to check and retry instead;
 * - what was being processed at POISON_CRASHES crashes in a row is poison: refused, never replayed;
 *   what was being processed at one crash goes back alone, so a second crash names it alone.
 */
import type { Logger } from '../log';
import { every } from '../log-aggregate';
import { Code } from '../protocol/codes';
import { errorFrame } from '../protocol/frames';
import type { FromShard, GroupCall, ShardStats, ToShard, VerifyCall } from '../actors/envelopes';
import { groupAddress, VERIFY_ADDRESS } from '../actors/address';
import { damagedState } from '../store/ports';
import type { InFlight } from './mailbox';
import type { RestartBudget } from './restart-budget';
import type { ShardEvents } from './shard-host';

/** A crash loop within the restart budget writes one `shard restarted` line per 10 s, with the count. */
const warnRestarted = every('shard restarted', 10_000);

/** Group requests that only read state or fan out: deciding them twice is harmless. */
const REPLAYABLE_GROUP_ACTS: ReadonlySet<string> = new Set(['detail', 'chat', 'notice']);

/** Crashes of its shard a request may be processed at before it counts as poison and is refused. */
export const POISON_CRASHES = 2;

/** What the supervisor needs of a shard's host (supervisor/shard-host.ts; tests hand in fakes). */
export interface Host {
  readonly index: number;
  /** The verifier's stored state, handed to the shard that hosts it when it starts. */
  readonly cfg: { verifierState: unknown };
  post(item: ToShard, opts?: { crashes?: number; alone?: boolean }): void;
  start(): Promise<void>;
  stop(deadlineMs?: number): Promise<void>;
}

export interface ShardsDeps<H extends Host> {
  /** Makes the host of shard `index`, reporting to `events`. */
  host(index: number, events: ShardEvents): H;
  /** The shard (worker index) that hosts `address`. */
  workerOf(address: string): number;
  /** An actor's newest state (stored, or handed on and not applied yet). */
  stateOf(address: string): unknown;
  /** Output of the actors (posts, states, answers, the verifier's cursor and proofs): the node's. */
  output(index: number, items: FromShard[]): void;
  sendTo(conn: number, frame: string): void;
  /** The restart budget is spent, or a shard cannot start again: the service stops. */
  fatal(err: unknown): void;
  readonly budget: RestartBudget;
  readonly counters: { restarts: number; poison: number };
  readonly log: Logger;
}

export class Shards<H extends Host = Host> {
  readonly hosts: H[] = [];
  /** Per shard: who waits for its next stats answer (one control message asks for all of them). */
  private readonly statsWaiting: Array<Array<(s: ShardStats) => void>> = [];

  constructor(count: number, private readonly deps: ShardsDeps<H>) {
    const events: ShardEvents = { output: (i, items) => this.output(i, items), died: (i, inFlight, err) => this.died(i, inFlight, err) };
    for (let index = 0; index < count; index++) this.hosts.push(deps.host(index, events));
  }

  start(): Promise<void> { return Promise.all(this.hosts.map((h) => this.startHost(h))).then(() => undefined); }

  stop(deadlineMs: number): Promise<void> { return Promise.all(this.hosts.map((h) => h.stop(deadlineMs))).then(() => undefined); }

  /** A group call, to the shard that hosts its actor. */
  decide(call: GroupCall): void { this.hosts[this.deps.workerOf(groupAddress(call.id))]!.post(call); }

  /** A call for the verification actor. */
  verify(call: VerifyCall): void { this.hosts[this.deps.workerOf(VERIFY_ADDRESS)]!.post(call); }

  /** Partitions gained or lost (cluster mode): their resident actors go; resolves once what the shards had taken is decided. */
  async evict(partitions: number[], verifierPartition: number): Promise<void> {
    const verifierShard = this.deps.workerOf(VERIFY_ADDRESS);
    for (const h of this.hosts) {
      const verifier = partitions.includes(verifierPartition) && h.index === verifierShard;
      h.post({ t: 'evict', partitions, ...(verifier ? { verifierState: this.deps.stateOf(VERIFY_ADDRESS) } : {}) });
    }
    // A shard answers in order: once its figures come back, what it had taken before is decided and out.
    await this.stats();
  }

  /** Asks one shard for its figures; resolves when that shard answers (never, while it is stuck). */
  statsOf(index: number): Promise<ShardStats> {
    return new Promise((resolve) => {
      const waiting = (this.statsWaiting[index] ??= []);
      waiting.push(resolve);
      if (waiting.length === 1) this.hosts[index]!.post({ t: 'control', op: 'stats' });
    });
  }

  /** Asks every shard for its figures, in shard order. */
  stats(): Promise<ShardStats[]> { return Promise.all(this.hosts.map((h) => this.statsOf(h.index))); }

  /** Test-only fault switch: crashes one shard in the middle of its work. */
  crash(index: number): void { this.hosts[index]?.post({ t: 'control', op: 'crash' }); }

  /** Starts (or restarts) a shard; the one hosting the verifier gets its stored state. */
  private startHost(h: H): Promise<void> {
    if (this.deps.workerOf(VERIFY_ADDRESS) === h.index) h.cfg.verifierState = this.deps.stateOf(VERIFY_ADDRESS);
    return h.start();
  }

  /** What a shard sends: loads and figures are the supervisor's; the rest is the actors' output. */
  private output(index: number, items: FromShard[]): void {
    let rest: FromShard[] | undefined;
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (item.t !== 'load' && item.t !== 'stats') { rest?.push(item); continue; }
      rest ??= items.slice(0, i);
      if (item.t === 'load') this.loaded(index, item.address, item.calls, Math.max(0, ...item.calls.map((c) => c.crashes ?? 0)));
      else this.collectStats(index, item);
    }
    this.deps.output(index, rest ?? items);
  }

  /** A group's stored state back to its shard, with the calls that wait for it (read now: the newest). */
  private loaded(index: number, address: string, calls: GroupCall[], crashes: number): void {
    this.hosts[index]!.post({ t: 'loaded', address, state: this.storedState(address), calls }, { crashes, alone: crashes > 0 });
  }

  /** A state the store cannot read (a corrupt page) reaches the shard as damaged (its group answers 41401), never as a throw here. */
  private storedState(address: string): unknown {
    try {
      return this.deps.stateOf(address);
    } catch (err) {
      this.deps.log.error({ err, address }, 'stored state could not be read');
      return damagedState(address);
    }
  }

  private collectStats(index: number, s: ShardStats): void {
    const waiting = this.statsWaiting[index] ?? [];
    this.statsWaiting[index] = [];
    for (const w of waiting) w(s);
  }

  // ---- when a shard dies ----

  private died(index: number, inFlight: InFlight<ToShard>[], err: unknown): void {
    const { counters, log } = this.deps;
    counters.restarts++;
    log.error({ shard: index, err, inFlight: inFlight.length }, 'shard died');
    if (!this.deps.budget.allow()) {
      log.fatal({ shard: index, restartMax: this.deps.budget.max, windowMs: this.deps.budget.windowMs }, 'restart budget exhausted, shutting down');
      this.deps.fatal(err);
      return;
    }
    for (const f of inFlight) this.replay(index, f);
    // A stats query lost with the shard would leave its waiters hanging: the new shard is asked again.
    if ((this.statsWaiting[index]?.length ?? 0) > 0) this.hosts[index]!.post({ t: 'control', op: 'stats' });
    this.startHost(this.hosts[index]!).then(
      () => warnRestarted(log, { shard: index, restarts: counters.restarts }, 'shard restarted'),
      (e: unknown) => { log.fatal({ err: e, shard: index }, 'shard failed to restart'); this.deps.fatal(e); },
    );
  }

  /** One message the dead shard had not answered: replayed, refused, or dropped, by the policy above. */
  private replay(index: number, { item, crashes }: InFlight<ToShard>): void {
    const host = this.hosts[index]!;
    const poison = crashes >= POISON_CRASHES;
    switch (item.t) {
      // A control message (a stats query, the fault switch itself) is not worth a second try.
      case 'control': return;
      case 'evict': return host.post(item);
      case 'group':
        if (poison) return this.refusePoison(index, item, crashes);
        if (!REPLAYABLE_GROUP_ACTS.has(item.origin.request.act)) return this.refuseRestarted(item);
        return host.post({ ...item, crashes }, { crashes, alone: crashes > 0 });
      case 'loaded': {
        // The calls that waited for a group's state: decided again with the newest state.
        const calls: GroupCall[] = [];
        for (const call of item.calls) {
          if (poison) this.refusePoison(index, call, crashes);
          else if (!REPLAYABLE_GROUP_ACTS.has(call.origin.request.act)) this.refuseRestarted(call);
          else calls.push({ ...call, crashes: Math.max(crashes, call.crashes ?? 0) });
        }
        if (calls.length > 0 || !poison) this.loaded(index, item.address, calls, crashes);
        return;
      }
      case 'verify':
        if (!poison) return host.post(item, { crashes, alone: crashes > 0 });
        this.deps.log.warn({ shard: index, crashes, kind: item.t, op: item.op }, 'poison: a verification call crashed its shard twice; not replayed');
        if (item.op === 'reg' || item.op === 'proof') this.deps.sendTo(item.conn, errorFrame(Code.INTERNAL, 'this request could not be processed', item.request));
    }
  }

  private refuseRestarted(call: GroupCall): void {
    this.deps.sendTo(call.origin.conn, errorFrame(Code.UNAVAILABLE, 'part of the server restarted, please retry', call.origin.request));
  }

  /** A call that crashed its shard twice: its requester hears an error; the log names the act and group, never the text. */
  private refusePoison(index: number, call: GroupCall, crashes: number): void {
    this.deps.counters.poison++;
    this.deps.log.warn({ shard: index, crashes, act: call.origin.request.act, group: call.id, account: call.origin.account }, 'poison: a request crashed its shard twice; not replayed');
    this.deps.sendTo(call.origin.conn, errorFrame(Code.INTERNAL, 'this request could not be processed', call.origin.request));
  }
}
