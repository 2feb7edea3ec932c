/**
 * The lanes of a cluster backlog (backlog-merge.ts): this node's store, read directly, and another
 * node's, read in pages over core NATS, one page in hand and the next one asked for ahead. A
 * remote lane whose conversations moved asks again where they are now, for up to the moved wait;
 * if they went to several places it hands them on as new lanes (before it ends, so the merge never
 * runs past them) and ends once what it holds is taken.
 */
import type { Backlog, BacklogCursor, BacklogItem } from '../actors/backlog';
import type { BacklogStart } from '../actors/log-reads';
import type { Lane } from './backlog-merge';
import type { ReadAnswer } from './read-answers';

/** The pauses before asking again where moved conversations are: from 100 ms, doubling, up to 1 s. */
export function* retryPauses(): Generator<number, never> {
  for (let ms = 100; ; ms = Math.min(1000, ms * 2)) yield ms;
}

/** Whether one more pause of `ms` would take a read past the moved wait that began at `since`. */
export function outOfTime(since: number, ms: number, movedWaitMs: number): boolean {
  return Date.now() - since + ms > movedWaitMs;
}

/** This node's store: records are taken one at a time, as the merge asks. */
export class LocalLane implements Lane {
  private buf: BacklogItem[] = [];
  private i = 0;

  constructor(private readonly backlog: Backlog) {}

  peek(): BacklogItem | undefined {
    while (this.i >= this.buf.length) {
      this.buf = [];
      this.i = 0;
      // A record the account does not get gives no item: read on to the next.
      if (this.backlog.take(this.buf) === 0) return undefined;
    }
    return this.buf[this.i];
  }

  shift(): void { this.i++; }
  waiting(): undefined { return undefined; }
  close(): void {}
}

/** What a remote lane asks of the backlog it is part of (reads.ts). */
export interface LaneHost {
  /** The page of the backlog from `start` (read on `node`). */
  page(node: string, start: BacklogStart): Promise<ReadAnswer>;
  /** Where the conversations of `start` are read now: by node id (this node's own, too), undefined for those with no owner yet. */
  regroup(start: BacklogStart): Map<string | undefined, BacklogStart>;
  /** A new lane of the backlog for `start` on `where`; `since`: when its conversations were first found moved. */
  spawn(where: string | undefined, start: BacklogStart, since: number): void;
  /** The conversations of `start` could not be read (logged); the rest of the backlog goes on. */
  gaveUp(start: BacklogStart, why: string): void;
  readonly self: string;
  readonly movedWaitMs: number;
}

export class RemoteLane implements Lane {
  private items: BacklogItem[] = [];
  private i = 0;
  /** The next page, here before it is needed. */
  private ahead: BacklogItem[] | undefined;
  /** Where the page after `ahead` starts (undefined: no more, or being asked for). */
  private from: BacklogStart | undefined;
  private pending: Promise<void> | undefined;
  private closed = false;

  /** `node` undefined: no owner known yet (asked again after a pause); `since`: when its conversations were first found moved. */
  constructor(private node: string | undefined, start: BacklogStart, private readonly host: LaneHost, private readonly since?: number) {
    this.from = start;
    this.prefetch();
  }

  peek(): BacklogItem | undefined {
    while (this.i >= this.items.length) {
      if (this.ahead === undefined) return undefined;
      this.items = this.ahead;
      this.i = 0;
      this.ahead = undefined;
      this.prefetch();
    }
    return this.items[this.i];
  }

  shift(): void { this.i++; }

  waiting(): Promise<void> | undefined { return this.pending; }

  close(): void {
    this.closed = true;
    this.from = undefined;
  }

  private prefetch(): void {
    const start = this.from;
    if (start === undefined || this.closed) return;
    this.from = undefined;
    // A page that arrives asks for the next one at once: only the newest ask is pending. The ask
    // leaves after this turn, once the backlog has made all its lanes (they share its byte bound).
    const p: Promise<void> = Promise.resolve().then(() => this.load(start))
      .catch((err: unknown) => this.host.gaveUp(start, (err as Error).message))
      .finally(() => { if (this.pending === p) this.pending = undefined; });
    this.pending = p;
  }

  /** Asks for the page from `start`, again where it is now while it is moving, within the moved wait. */
  private async load(start: BacklogStart): Promise<void> {
    let since = this.since;
    for (const wait of retryPauses()) {
      if (this.closed) return;
      const a: ReadAnswer = this.node === undefined ? { t: 'moved' } : await this.host.page(this.node, start);
      if (this.closed) return;
      if (a.t === 'page') return this.arrived(a.items, a.cursors);
      if (a.t !== 'moved') return this.host.gaveUp(start, a.t === 'failed' ? a.error : 'an answer of another kind');
      since ??= Date.now();
      if (outOfTime(since, wait, this.host.movedWaitMs)) return this.host.gaveUp(start, 'moved, and not found where it went in time');
      await new Promise((r) => setTimeout(r, wait));
      if (this.closed) return;
      const places = this.host.regroup(start);
      const [only] = places.keys();
      if (places.size === 1 && only !== this.host.self) { this.node = only; continue; }
      // Read from several places now (or from this node's store): new lanes, joined before this one ends.
      for (const [where, part] of places) this.host.spawn(where, part, since);
      return;
    }
  }

  private arrived(items: BacklogItem[], cursors: BacklogCursor[]): void {
    this.ahead = items;
    this.from = cursors.length > 0 ? { cursors } : undefined;
    // Nothing in hand: the page is taken up now, and the one after it asked for.
    this.peek();
  }
}
