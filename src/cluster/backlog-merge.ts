/**
 * A sign-in backlog read in several places (this node's store and the nodes that own the account's
 * other conversations), merged by offset so the `seq` of every frame the account gets still
 * increases. Each place is a lane giving its items in offset order, some of them still on their
 * way: nothing is taken while a lane that may have a smaller offset coming has nothing here yet,
 * so the merge waits for it (the lanes fetch one page ahead to make that rare).
 */
import type { BacklogItem } from '../actors/backlog';
import type { BacklogSource } from '../actors/log-reads';
import { OffsetHeap } from '../actors/offset-heap';

/** One ordered part of a merged backlog. */
export interface Lane {
  /** The next item here now, not taken; undefined: none here now (`waiting` says whether more may come). */
  peek(): BacklogItem | undefined;
  /** Takes the item `peek` gave. */
  shift(): void;
  /** While nothing is here: a promise (never rejecting) if more may come; undefined: the lane is done. */
  waiting(): Promise<void> | undefined;
  /** Nothing more is wanted: stop fetching. */
  close(): void;
}

export class MergedBacklog implements BacklogSource {
  /** Lanes with an item here, by its offset. */
  private readonly ready = new OffsetHeap<Lane>((l) => l.peek()!.offset);
  /** Lanes with nothing here that may get more: nothing is taken until each has its next item or is done. */
  private blocked: Lane[] = [];
  private closed = false;
  private failed = false;

  constructor(lanes: Lane[] = []) {
    for (const l of lanes) this.add(l);
  }

  /**
   * A lane joins: one of the account's conversations read from a new place (its partition moved).
   * Its items must all come after what was taken from the lane it continues.
   */
  add(lane: Lane): void {
    if (this.closed) return lane.close();
    if (lane.peek() !== undefined) this.ready.push(lane);
    else if (lane.waiting() !== undefined) this.blocked.push(lane);
  }

  next(n: number): { frames: string[]; last: number } {
    const frames: string[] = [];
    let last = 0;
    if (this.failed) return { frames, last };
    this.unblock();
    while (frames.length < n && this.blocked.length === 0) {
      const lane = this.ready.top();
      if (lane === undefined) break;
      const item = lane.peek()!;
      lane.shift();
      frames.push(item.frame);
      last = item.offset;
      // A `limited` notice has the offset of the record after it, in the same lane: both go now, so
      // `last` never names a record not yet sent.
      let after = lane.peek();
      while (after !== undefined && after.offset === item.offset) {
        lane.shift();
        frames.push(after.frame);
        after = lane.peek();
      }
      if (after !== undefined) this.ready.topChanged();
      else {
        this.ready.pop();
        this.add(lane);
      }
    }
    return { frames, last };
  }

  waiting(): Promise<void> | undefined {
    if (this.failed) return undefined;
    this.unblock();
    return this.blocked[0]?.waiting();
  }

  /**
   * A part could not be read: nothing more is taken (a later record would go out before the part's
   * and the account's positions would pass it); the reader reads again from what it got.
   */
  fail(): void {
    this.failed = true;
    this.close();
  }

  incomplete(): boolean { return this.failed; }

  close(): void {
    this.closed = true;
    for (const l of [...this.ready.items(), ...this.blocked]) l.close();
    this.blocked = [];
    while (this.ready.pop() !== undefined) { /* emptied */ }
  }

  /** Blocked lanes that got their next item (or ended) go back to the merge. */
  private unblock(): void {
    if (this.blocked.length === 0) return;
    const was = this.blocked;
    this.blocked = [];
    for (const l of was) this.add(l);
  }
}
