/**
 * The queue of sign-in backlogs (src/actors/sync-queue.ts): at most `limit` run at once, the rest
 * start in arrival order as turns free up; a key that leaves while waiting never starts; 0 is no bound.
 */
import { expect } from 'chai';
import { SyncQueue } from '../src/actors/sync-queue';

describe('actors: sync queue', () => {
  it('runs at most `limit` at once; the rest start first come first served as turns free up', () => {
    const q = new SyncQueue<string>(2);
    const started: string[] = [];
    for (const k of ['a', 'b', 'c', 'd', 'e']) q.enter(k, () => started.push(k));
    expect(started).to.deep.equal(['a', 'b']);
    expect([q.active, q.queued]).to.deep.equal([2, 3]);
    q.leave('b');
    expect(started).to.deep.equal(['a', 'b', 'c']);
    q.leave('a');
    q.leave('c');
    expect(started).to.deep.equal(['a', 'b', 'c', 'd', 'e']);
    expect([q.active, q.queued]).to.deep.equal([2, 0]);
  });

  it('a key that leaves while waiting never starts and takes no turn; leaving twice or unknown is nothing', () => {
    const q = new SyncQueue<number>(1);
    const started: number[] = [];
    for (const k of [1, 2, 3, 4]) q.enter(k, () => started.push(k));
    q.leave(3);
    q.leave(3);
    q.leave(99);
    expect([q.active, q.queued]).to.deep.equal([1, 2]);
    q.leave(1);
    q.leave(1);
    expect(started).to.deep.equal([1, 2]);
    q.leave(2);
    expect(started).to.deep.equal([1, 2, 4]);
    q.leave(4);
    expect([q.active, q.queued]).to.deep.equal([0, 0]);
  });

  it('a key already running or waiting is not entered twice', () => {
    const q = new SyncQueue<string>(1);
    let runs = 0;
    q.enter('a', () => runs++);
    q.enter('a', () => runs++);
    q.enter('b', () => runs++);
    q.enter('b', () => runs++);
    expect([runs, q.active, q.queued]).to.deep.equal([1, 1, 1]);
    q.leave('a');
    expect([runs, q.active, q.queued]).to.deep.equal([2, 1, 0]);
  });

  it('a start that ends at once (leave inside start) hands its turn on without overrunning the limit', () => {
    const q = new SyncQueue<number>(2);
    const started: number[] = [];
    let most = 0;
    const start = (k: number) => () => {
      started.push(k);
      most = Math.max(most, q.active);
      if (k % 2 === 0) q.leave(k);
    };
    q.enter(1, start(1));
    q.enter(3, start(3));
    for (const k of [2, 4, 5, 6, 7]) q.enter(k, start(k));
    expect(started).to.deep.equal([1, 3]);
    q.leave(1);
    expect(started).to.deep.equal([1, 3, 2, 4, 5]);
    expect(most).to.be.at.most(2);
    q.leave(3);
    q.leave(5);
    expect(started).to.deep.equal([1, 3, 2, 4, 5, 6, 7]);
    expect(q.queued).to.equal(0);
  });

  it('limit 0: no bound', () => {
    const q = new SyncQueue<number>(0);
    let runs = 0;
    for (let k = 0; k < 10_000; k++) q.enter(k, () => runs++);
    expect([runs, q.queued]).to.deep.equal([10_000, 0]);
  });
});
