/**
 * A cluster backlog's merge (src/cluster/backlog-merge.ts) and its lanes (backlog-lanes.ts),
 * without a server: lanes interleaved by offset, a `limited` notice kept with its record, a lane
 * whose next page is still on its way holds the merge back, and a remote lane that fails or whose
 * conversations stay moved ends (logged) while the rest goes on; one whose conversations moved to
 * several places hands them on as new lanes before it ends.
 */
import { expect } from 'chai';
import type { BacklogCursor, BacklogItem } from '../src/actors/backlog';
import type { BacklogStart } from '../src/actors/log-reads';
import { RemoteLane, type LaneHost } from '../src/cluster/backlog-lanes';
import { MergedBacklog, type Lane } from '../src/cluster/backlog-merge';
import type { ReadAnswer } from '../src/cluster/read-answers';

const item = (offset: number, frame = `f${offset}`): BacklogItem => ({ offset, frame });

/** A lane over a fixed list, all here at once. */
class ListLane implements Lane {
  private i = 0;
  closed = false;
  constructor(private readonly items: BacklogItem[]) {}
  peek(): BacklogItem | undefined { return this.items[this.i]; }
  shift(): void { this.i++; }
  waiting(): undefined { return undefined; }
  close(): void { this.closed = true; }
}

/** A lane whose items arrive when the test says (`give`), and ends when it says (`end`). */
class LateLane implements Lane {
  private readonly items: BacklogItem[] = [];
  private i = 0;
  private done = false;
  private wake: (() => void) | undefined;
  private promise: Promise<void> | undefined;
  closed = false;
  give(...xs: BacklogItem[]): void { this.items.push(...xs); this.fire(); }
  end(): void { this.done = true; this.fire(); }
  peek(): BacklogItem | undefined { return this.items[this.i]; }
  shift(): void { this.i++; }
  waiting(): Promise<void> | undefined {
    if (this.done) return undefined;
    this.promise ??= new Promise((r) => { this.wake = r; });
    return this.promise;
  }
  close(): void { this.closed = true; }
  private fire(): void { const w = this.wake; this.wake = undefined; this.promise = undefined; w?.(); }
}

/** Everything the merge gives now, `n` at a time: frames, and every `last`. */
function takeNow(m: MergedBacklog, n = 1): { frames: string[]; lasts: number[] } {
  const frames: string[] = [];
  const lasts: number[] = [];
  for (;;) {
    const r = m.next(n);
    if (r.last === 0) { expect(r.frames).to.deep.equal([]); return { frames, lasts }; }
    frames.push(...r.frames);
    lasts.push(r.last);
  }
}

/** The whole merge, waiting where it must. */
async function drain(m: MergedBacklog, n = 1): Promise<string[]> {
  const out: string[] = [];
  for (let turns = 0; turns < 10_000; turns++) {
    out.push(...takeNow(m, n).frames);
    const w = m.waiting();
    if (w === undefined) return out;
    await w;
  }
  throw new Error('the merge never ended');
}

describe('cluster: a backlog merged from lanes', () => {
  it('interleaves lanes by offset, `last` rising, each frame once', () => {
    const a = new ListLane([1, 4, 5, 9].map((o) => item(o)));
    const b = new ListLane([2, 3, 10].map((o) => item(o)));
    const c = new ListLane([6, 7, 8, 11, 12].map((o) => item(o)));
    const m = new MergedBacklog([a, b, new ListLane([]), c]);
    const { frames, lasts } = takeNow(m, 2);
    expect(frames).to.deep.equal(Array.from({ length: 12 }, (_, i) => `f${i + 1}`));
    expect(lasts).to.deep.equal([...lasts].sort((x, y) => x - y));
    expect(lasts.at(-1)).to.equal(12);
    expect(m.waiting()).to.equal(undefined);
  });

  it('a `limited` notice goes with the record after it (same offset), even one at a time', () => {
    const a = new ListLane([item(5, 'notice'), item(5, 'r5'), item(8)]);
    const b = new ListLane([item(3), item(6)]);
    const m = new MergedBacklog([a, b]);
    expect(m.next(1)).to.deep.equal({ frames: ['f3'], last: 3 });
    expect(m.next(1)).to.deep.equal({ frames: ['notice', 'r5'], last: 5 });
    expect(takeNow(m).frames).to.deep.equal(['f6', 'f8']);
  });

  it('waits for a lane with nothing here yet: nothing past it is taken until its page comes', async () => {
    const here = new ListLane([1, 3, 5, 7].map((o) => item(o)));
    const late = new LateLane();
    const m = new MergedBacklog([here, late]);
    // The late lane may yet have offset 2: not even 1 goes before it answers.
    expect(m.next(10)).to.deep.equal({ frames: [], last: 0 });
    const w = m.waiting();
    expect(w).to.be.instanceOf(Promise);
    setTimeout(() => late.give(item(2), item(4)), 20);
    await w;
    // What is here goes as far as the late lane's last item; then the merge waits again.
    expect(takeNow(m).frames).to.deep.equal(['f1', 'f2', 'f3', 'f4']);
    const again = m.waiting();
    expect(again).to.be.instanceOf(Promise);
    setTimeout(() => late.end(), 10);
    await again;
    expect(takeNow(m).frames).to.deep.equal(['f5', 'f7']);
    expect(m.waiting()).to.equal(undefined);
  });

  it('close closes every lane still open', () => {
    const a = new ListLane([item(1)]);
    const late = new LateLane();
    const m = new MergedBacklog([a, late]);
    m.close();
    expect(a.closed && late.closed).to.equal(true);
    expect(m.next(5)).to.deep.equal({ frames: [], last: 0 });
    expect(m.waiting()).to.equal(undefined);
  });
});

/** A host whose pages come from a script; what it hands on and gives up is recorded. */
class ScriptHost implements LaneHost {
  readonly self = 'me';
  readonly asked: Array<[string, BacklogStart]> = [];
  readonly spawned: Array<[string | undefined, BacklogStart, number]> = [];
  readonly given: string[] = [];
  constructor(readonly movedWaitMs: number, private readonly answer: (node: string, start: BacklogStart) => ReadAnswer, readonly places: () => Map<string | undefined, BacklogStart> = () => new Map()) {}
  page(node: string, start: BacklogStart): Promise<ReadAnswer> {
    this.asked.push([node, start]);
    return new Promise((r) => setTimeout(() => r(this.answer(node, start)), 5));
  }
  regroup(): Map<string | undefined, BacklogStart> { return this.places(); }
  spawn(where: string | undefined, start: BacklogStart, since: number): void { this.spawned.push([where, start, since]); }
  gaveUp(_start: BacklogStart, why: string): void { this.given.push(why); }
}

const cursorAt = (after: number): BacklogCursor[] => [{ conv: 'g:G', after }];

describe('cluster: a remote backlog lane', () => {
  it('reads page after page, asking for the next from where the last ended, one page ahead', async () => {
    const pages = new Map<number, ReadAnswer>([
      [0, { t: 'page', items: [item(2), item(4)], cursors: cursorAt(4) }],
      [4, { t: 'page', items: [], cursors: cursorAt(6) }],
      [6, { t: 'page', items: [item(8)], cursors: [] }],
    ]);
    const host = new ScriptHost(1000, (_n, s) => pages.get('cursors' in s ? s.cursors[0]!.after : 0)!);
    const lane = new RemoteLane('n1', { memberships: [{ conv: 'g:G', since: 0 }] }, host);
    await lane.waiting();
    // The first page is in hand, nothing taken yet, and the next one already asked for.
    expect(lane.peek()).to.deep.equal(item(2));
    expect(host.asked).to.have.length(2);
    const other = new ListLane([item(3), item(9)]);
    expect(await drain(new MergedBacklog([lane, other]))).to.deep.equal(['f2', 'f3', 'f4', 'f8', 'f9']);
    expect(host.asked.map(([n, s]) => [n, 'cursors' in s ? s.cursors[0]!.after : 'start'])).to.deep.equal([['n1', 'start'], ['n1', 4], ['n1', 6]]);
  });

  it('a lane that fails ends (given up, logged by the host) and the rest of the backlog goes on', async () => {
    const host = new ScriptHost(1000, () => ({ t: 'failed', error: 'broken' }));
    const lane = new RemoteLane('n1', { memberships: [{ conv: 'g:G', since: 0 }] }, host);
    expect(await drain(new MergedBacklog([lane, new ListLane([item(1), item(2)])]))).to.deep.equal(['f1', 'f2']);
    expect(host.given).to.deep.equal(['broken']);
  });

  it('moved: asked again where it is now until the moved wait is over, then given up', async () => {
    const host = new ScriptHost(400, () => ({ t: 'moved' }), () => new Map([['n1', { cursors: cursorAt(0) }]]));
    const t0 = Date.now();
    const lane = new RemoteLane('n1', { cursors: cursorAt(0) }, host);
    expect(await drain(new MergedBacklog([lane, new ListLane([item(1)])]))).to.deep.equal(['f1']);
    expect(Date.now() - t0).to.be.within(150, 1000);
    expect(host.asked.length).to.be.greaterThan(1);
    expect(host.given).to.have.length(1);
  });

  it('moved to another node: the lane asks there and reads on', async () => {
    const host = new ScriptHost(2000, (node) => node === 'n1' ? { t: 'moved' } : { t: 'page', items: [item(7)], cursors: [] }, () => new Map([['n2', { cursors: cursorAt(0) }]]));
    const lane = new RemoteLane('n1', { cursors: cursorAt(0) }, host);
    expect(await drain(new MergedBacklog([lane]))).to.deep.equal(['f7']);
    expect(host.asked.map(([n]) => n)).to.deep.equal(['n1', 'n2']);
  });

  it('moved to several places (or here): new lanes are handed on before the lane ends', async () => {
    const split = new Map<string | undefined, BacklogStart>([['me', { cursors: cursorAt(1) }], ['n3', { cursors: [{ conv: 'd:x:y', after: 1 }] }]]);
    const host = new ScriptHost(2000, () => ({ t: 'moved' }), () => split);
    const lane = new RemoteLane('n1', { cursors: [...cursorAt(1), { conv: 'd:x:y', after: 1 }] }, host);
    const w = lane.waiting()!;
    await w;
    expect(host.spawned.map(([where, start]) => [where, start])).to.deep.equal([...split]);
    expect(lane.peek()).to.equal(undefined);
    expect(lane.waiting()).to.equal(undefined);
    expect(host.given).to.deep.equal([]);
  });
});
