/**
 * The delivery actor reading through a `LogReads` that is not all here (src/actors/log-reads.ts,
 * catch-up.ts): a sign-in backlog whose frames come in parts is sent in order as they come, with
 * live frames held behind it; a connection that closes meanwhile closes its backlog; a `history`
 * answered later is sent only to a connection still open.
 */
import { expect } from 'chai';
import type { BacklogRange } from '../src/actors/backlog';
import { Delivery } from '../src/actors/delivery';
import type { HistoryAnswer } from '../src/actors/history';
import type { BacklogSource, LogReads } from '../src/actors/log-reads';
import { directTemplate, type Request } from '../src/protocol/frames';
import { MemoryStore } from '../src/store/memory/memory-store';
import { directConv, type Membership } from '../src/store/ports';
import { FakePeer, peersOf } from './support/peers';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';

const turns = async (n = 5): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

/** A backlog whose frames the test hands in (`give`), then ends (`end`). */
class PartsSource implements BacklogSource {
  private readonly frames: Array<[string, number]> = [];
  private done = false;
  private wake: (() => void) | undefined;
  private promise: Promise<void> | undefined;
  closed = false;
  /** Part of it was not read (its owner did not answer). */
  partial = false;
  give(frame: string, offset: number): void { this.frames.push([frame, offset]); this.fire(); }
  end(): void { this.done = true; this.fire(); }
  incomplete(): boolean { return this.partial; }
  next(n: number): { frames: string[]; last: number } {
    const taken = this.frames.splice(0, n);
    return { frames: taken.map(([f]) => f), last: taken.at(-1)?.[1] ?? 0 };
  }
  waiting(): Promise<void> | undefined {
    if (this.done || this.closed) return undefined;
    this.promise ??= new Promise((r) => { this.wake = r; });
    return this.promise;
  }
  close(): void { this.closed = true; this.fire(); }
  private fire(): void { const w = this.wake; this.wake = undefined; this.promise = undefined; w?.(); }
}

class FakeReads implements LogReads {
  readonly sources: PartsSource[] = [];
  readonly ranges: BacklogRange[] = [];
  answer: ((a: HistoryAnswer) => void) | undefined;
  backlog(range: BacklogRange, _m: Membership[]): PartsSource {
    const s = new PartsSource();
    this.ranges.push(range);
    this.sources.push(s);
    return s;
  }
  history(): Promise<HistoryAnswer> { return new Promise((r) => { this.answer = r; }); }
}

const limits = { retainCount: 1000, retainAgeMs: 0, groupBacklog: 50, maxBuffered: 8 << 20 };

function live(d: Delivery, n: number): void {
  const tpl = directTemplate(B, JSON.stringify({ n }));
  d.post({ t: 'post', conv: directConv(A, B), tpl, from: B, to: [A] }, Date.now());
}

/** Alice signed in on a delivery actor reading through fake reads; her sync under way. */
async function signedIn() {
  const reads = new FakeReads();
  const alice = new FakePeer(1, A);
  const peers = [alice];
  const d = new Delivery(new MemoryStore(), peersOf(peers), limits, reads);
  d.sync(alice);
  await turns();
  return { reads, alice, peers, d };
}

describe('actors: catch-up through reads that come in parts', () => {
  it('a backlog that ended incomplete is read again from the last record sent, and its held live frames never go out first', async () => {
    const { reads, alice, d } = await signedIn();
    const first = reads.sources[0]!;
    first.give('b1', 1);
    await turns();
    live(d, 1);
    first.partial = true;
    first.end();
    await turns();
    // Not caught up: the live frame is not sent (it may be after a record not read yet).
    expect(alice.frames).to.deep.equal(['b1']);
    await new Promise((r) => setTimeout(r, 1100));
    expect(reads.ranges).to.have.length(2);
    expect(reads.ranges[1]!.after).to.equal(1);
    const again = reads.sources[1]!;
    again.give('b2', 2);
    again.end();
    await turns();
    expect(alice.frames).to.deep.equal(['b1', 'b2']);
    expect(d.stats()).to.include({ backlogRetries: 1 });
  });

  it('sends the backlog as it comes, in order, and live frames only after it', async () => {
    const { reads, alice, d } = await signedIn();
    const src = reads.sources[0]!;
    src.give('b1', 1);
    src.give('b2', 2);
    await turns();
    expect(alice.frames).to.deep.equal(['b1', 'b2']);
    live(d, 1);
    await turns();
    // Still reading: the live frame waits behind what is to come.
    expect(alice.frames).to.have.length(2);
    src.give('b3', 3);
    await turns();
    expect(alice.frames).to.deep.equal(['b1', 'b2', 'b3']);
    src.end();
    await turns();
    expect(alice.frames.slice(0, 3)).to.deep.equal(['b1', 'b2', 'b3']);
    expect(alice.frames).to.have.length(4);
    expect(JSON.parse(alice.frames[3]!).msg).to.deep.equal({ n: 1 });
    expect(d.stats().syncing).to.equal(0);
  });

  it('a connection that closes while its backlog waits closes the backlog', async () => {
    const { reads, alice, peers, d } = await signedIn();
    const src = reads.sources[0]!;
    peers.length = 0;
    d.closed(alice);
    expect(src.closed).to.equal(true);
    await turns();
    expect(d.stats().syncing).to.equal(0);
    expect(alice.frames).to.deep.equal([]);
  });

  it('a history answered later goes to a connection still open, and not to one that closed', async () => {
    const reads = new FakeReads();
    const alice = new FakePeer(1, A);
    const bob = new FakePeer(2, B);
    const peers = [alice, bob];
    const d = new Delivery(new MemoryStore(), peersOf(peers), limits, reads);
    const r: Request = { cat: 'chat', act: 'history', with: B };
    d.history(alice, r);
    reads.answer!({ ok: true, frame: 'page-a' });
    d.history(bob, { ...r, with: A });
    const answerBob = reads.answer!;
    peers.splice(1, 1);
    answerBob({ ok: true, frame: 'page-b' });
    await turns();
    expect(alice.frames).to.deep.equal(['page-a']);
    expect(bob.frames).to.deep.equal([]);
  });
});
