/**
 * Filling in a partition this node has just claimed (stored-partitions.ts): the records of its
 * conversations in the ledger's entries from before the claim, read again from JetStream and
 * stored (pushed to no one: their recipients had them live, or read them at sign-in). Edits and
 * deletes rewrite their originals and retention trims apply as they did for the node that kept
 * the partition then. Claims that come together (a starting node takes its share at once) are
 * filled in by one pass over the ledger.
 */
import { DeliverPolicy } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { convPartition } from '../actors/address';
import { applyChange } from '../actors/edits';
import type { Store } from '../store/ports';
import type { Engine } from './engine';
import { decodeEntry, firstOffset, recordsOf, splitEntry, VOID_AFTER_MS, type Entry } from './entry';
import { decodeInterest } from './interest';

interface Request { partition: number; after: number; through: number; done(): void; fail(err: unknown): void }

export class Backfill {
  private queue: Request[] = [];
  private running = false;
  readonly counters = { passes: 0, entries: 0, records: 0 };

  constructor(private readonly engine: Engine, private readonly partitions: number, private readonly store: Store, private readonly log: Logger) {}

  /** Stores the records of `partition` in the entries after `after` through `through`. */
  fill(partition: number, after: number, through: number): Promise<void> {
    return new Promise((done, fail) => {
      this.queue.push({ partition, after, through, done, fail });
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        try {
          await this.pass(batch);
          for (const r of batch) r.done();
        } catch (err) {
          for (const r of batch) r.fail(err);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** One read of the ledger over every request of the batch. */
  private async pass(batch: Request[]): Promise<void> {
    const from = Math.min(...batch.map((r) => r.after)) + 1;
    const to = Math.max(...batch.map((r) => r.through));
    const t0 = Date.now();
    this.counters.passes++;
    const consumer = await this.engine.js.consumers.get(this.engine.names.stream, {
      filter_subjects: this.engine.names.ledgerAll,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
    });
    const messages = await consumer.consume({ max_messages: 512, expires: 5000, idle_heartbeat: 1000 });
    let records = 0;
    let next = from;
    try {
      for await (const m of messages) {
        // Entries are never deleted one by one: a gap means the ledger was trimmed under this read
        // (the partition is then loaded from its snapshot at the next claim).
        if (m.seq !== next) throw new Error(`the ledger was trimmed below ${m.seq} while entries from ${next} were read`);
        next = m.seq + 1;
        const wanted = new Set(batch.filter((r) => m.seq > r.after && m.seq <= r.through).map((r) => r.partition));
        // An entry whose interest line names none of these partitions holds none of their records: not decoded.
        const i = decodeInterest(splitEntry(m.data).line);
        if (i !== undefined && !i.all && !i.parts.some((p) => wanted.has(p))) wanted.clear();
        if (wanted.size > 0) records += this.entry(m.data, Number(m.timestampNanos / 1_000_000n), m.seq, wanted);
        if (m.seq >= to) break;
      }
    } finally {
      messages.stop();
    }
    await this.store.flush();
    this.log.info({ partitions: batch.map((r) => r.partition), from, to, records, ms: Date.now() - t0 }, 'partitions filled in from the ledger');
  }

  /** The records of one entry for the partitions in `wanted`; how many. Entries every node skipped are skipped. */
  private entry(data: Uint8Array, storedAt: number, seq: number, wanted: Set<number>): number {
    let entry: Entry;
    try { entry = decodeEntry(data); } catch { return 0; }
    if (storedAt - entry.at > VOID_AFTER_MS) return 0;
    this.counters.entries++;
    const log = this.store.log;
    let n = 0;
    for (const r of recordsOf(entry.ops, firstOffset(seq))) {
      if (!wanted.has(convPartition(r.entry.conv, this.partitions))) continue;
      log.append(r.entry, r.offset);
      if (r.op.t === 'change') applyChange(log, r.op.change, r.offset);
      n++;
    }
    for (const op of entry.ops) if (op.t === 'trim' && wanted.has(convPartition(op.conv, this.partitions))) log.trimThrough(op.conv, op.upTo);
    this.counters.records += n;
    return n;
  }
}
