/**
 * The delivery actor's wait-until-durable gate: output that may leave only once the records behind
 * it are on disk (a sender's acknowledgement, a frame to an acknowledging account, the answer to a
 * change) waits here for the one store flush of its turn, and leaves, in order, when it resolves.
 *
 * A file of its own because it holds the decision about a commit that fails (commitFailure): on a
 * full disk a lone store loses that turn's writes, tells who waited and goes on; on a replica, or
 * for any other error, the failure is fatal and goes to the owner. Either way nothing waiting is
 * released as if it were durable.
 */
import { logger } from '../log';
import { now as clock, secondsSince, storeFlushSeconds } from '../status/instruments';
import { lostForNow, type Store } from '../store/ports';
import { EndOfTurn } from '../turn';

/** What becomes of the output waiting on a commit that failed: told it was lost, or never released. */
export type CommitFailure = 'lost' | 'fatal';

/**
 * A full disk loses the turn's writes, and the process goes on (the node refuses writes until the
 * store's probe succeeds). A replica of a ledger that lost a write would differ from the others for
 * good (it restarts and replays from its mark instead), and any other error leaves the store in
 * doubt: both are fatal.
 */
export function commitFailure(err: unknown, replica: boolean): CommitFailure {
  return lostForNow(err) && !replica ? 'lost' : 'fatal';
}

/** What the gate asks of the actor that owns it. */
export interface GateOwner {
  /** The store is a replica of a ledger (asked when a commit fails). */
  replica(): boolean;
  /** A turn's writes were lost to a full disk; runs before the waiting output is told. */
  lost(): void;
  /** A commit failed for good: the waiting output never leaves; the owner decides what stops. */
  fatal(err: unknown): void;
}

interface Waiting { done: () => void; lost: (() => void) | undefined }

export class DurableGate {
  private queue: Waiting[] = [];
  private readonly turn = new EndOfTurn(() => this.flushTurn());
  private released: Promise<void> = Promise.resolve();
  private readonly log = logger({ part: 'delivery' });

  constructor(private readonly store: Pick<Store, 'flush'>, private readonly owner: GateOwner) {}

  /**
   * Runs `fn` once everything stored so far is durable. If the writes were lost to a full disk
   * instead, `lost` runs (when given) and `fn` never does.
   */
  after(fn: () => void, lost?: () => void): void {
    this.queue.push({ done: fn, lost });
    this.turn.request();
  }

  /** Waits until what is stored so far is durable (or lost) and everything before it released. */
  async settle(): Promise<void> {
    await new Promise<void>((resolve) => this.after(resolve, resolve));
    await this.released;
  }

  /** One flush per turn for everything that waits on it; turns are released in order. */
  private flushTurn(): void {
    const queue = this.queue;
    this.queue = [];
    const durable = this.timedFlush();
    this.released = this.released
      .then(() => durable)
      .then(() => { for (const w of queue) w.done(); }, (err: unknown) => this.commitFailed(err, queue))
      .catch((err: unknown) => {
        // Output that cannot be made durable must not leave; a restart starts from what is on disk.
        this.log.fatal({ err }, 'store write failed');
        this.owner.fatal(err);
      });
  }

  private timedFlush(): Promise<void> {
    const requested = clock();
    const durable = this.store.flush();
    durable.then(() => storeFlushSeconds.observe(secondsSince(requested)), () => { /* handled in flushTurn */ });
    return durable;
  }

  /** A lost turn tells who waited (nothing is acknowledged); a fatal one is rethrown to flushTurn. */
  private commitFailed(err: unknown, queue: Waiting[]): void {
    if (commitFailure(err, this.owner.replica()) === 'fatal') throw err;
    this.owner.lost();
    for (const w of queue) w.lost?.();
  }
}
