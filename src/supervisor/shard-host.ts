/**
 * Hosts one shard: spawns its worker thread, carries its mailbox, and reports the worker's death
 * to the supervisor, which decides about the restart. The worker runs src/actors/shard.ts; group actors
 * and the verifier are stateful, so they live on these long-lived threads of our own, not in
 * piscina (whose pool is for stateless tasks: see src/net/signatures.ts).
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { Batch, FromShard, ToShard } from '../actors/envelopes';
import type { ShardConfig } from '../actors/shard-config';
import type { Settings } from '../config';
import { logger } from '../log';
import { Mailbox, type InFlight } from './mailbox';

const SHARD_SCRIPT = join(__dirname, '..', 'actors', 'shard.js');

export interface ShardEvents {
  output(index: number, items: FromShard[]): void;
  /** The worker died; `inFlight` is what it had not answered, each with the crashes it was processed at. */
  died(index: number, inFlight: InFlight<ToShard>[], error: unknown): void;
}

/** Shard `index`'s configuration, from the settings (the verifier's state is added when it starts). */
export function shardConfig(s: Settings, index: number, maxDetailBytes: number): ShardConfig {
  return {
    index, workers: s.workers, partitions: s.partitions,
    limits: { maxGroupSize: s.maxGroupSize, maxBlocked: s.maxBlocked, maxDetailBytes },
    testFaults: s.testFaults, logLevel: s.logLevel, verify: { target: s.verifyTarget, ttlMs: s.verifyTtlMs },
    verifierState: undefined, groupsResident: s.groupsResident, groupIdleMs: s.groupIdleMs,
  };
}

export class ShardHost {
  readonly mailbox = new Mailbox<ToShard>();
  private worker: Worker | undefined;
  private stopping = false;
  private readonly log;
  startedAt = 0;

  constructor(readonly cfg: ShardConfig, private readonly events: ShardEvents) {
    this.log = logger({ shard: cfg.index });
    this.mailbox.dropped = (err, item) => this.log.error({ err, kind: item.t }, 'message could not cross to the shard; dropped');
  }

  get index(): number { return this.cfg.index; }
  get up(): boolean { return this.worker !== undefined && this.startedAt > 0; }
  get threadId(): number | undefined { return this.worker?.threadId; }

  /** Starts the worker; resolves once it has restored its partitions and is ready for mail. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(SHARD_SCRIPT, { workerData: this.cfg });
      this.worker = worker;
      let lastError: unknown;
      worker.on('message', (msg: Batch<FromShard> | { ready: true } | { closed: true }) => {
        if ('closed' in msg) { this.closed?.(); return; }
        if ('ready' in msg) {
          this.startedAt = Date.now();
          this.mailbox.attach(worker);
          resolve();
          return;
        }
        this.mailbox.settle(msg.id);
        this.events.output(this.cfg.index, msg.items);
      });
      worker.on('error', (err) => { lastError = err; this.log.error({ err }, 'shard thread threw'); });
      worker.on('exit', (code) => {
        const wasReady = this.startedAt > 0;
        this.worker = undefined;
        this.startedAt = 0;
        this.mailbox.attach(undefined);
        if (this.stopping) return;
        if (!wasReady) { reject(lastError ?? new Error(`shard ${this.cfg.index} exited with ${code} while starting`)); return; }
        this.events.died(this.cfg.index, this.mailbox.takeInFlight(), lastError ?? new Error(`exit code ${code}`));
      });
    });
  }

  post(item: ToShard, opts?: { crashes?: number; alone?: boolean }): void { this.mailbox.post(item, opts); }

  private closed: (() => void) | undefined;

  /**
   * Graceful stop: the shard finishes everything in its mailbox, makes it durable, writes a
   * checkpoint and closes its files; only a shard that does not manage that in time is cut off.
   */
  async stop(deadlineMs = 5000): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (!worker) return;
    if (this.up) {
      const done = new Promise<void>((resolve) => { this.closed = resolve; });
      this.mailbox.post({ t: 'control', op: 'shutdown' });
      this.mailbox.flush();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), deadlineMs); });
      if ((await Promise.race([done, late])) === 'late') this.log.error('shard did not close in time; terminating it');
      clearTimeout(timer);
    }
    await worker.terminate();
  }
}
