/**
 * Retention by age, the decision beside its code: the sweep trims every record older than the
 * limit, conversation by conversation, over more than one page; in cluster mode it only proposes
 * the trims (each replica applies them from the ledger) and trims nothing itself.
 */
import { expect } from 'chai';
import { Retention } from '../src/actors/retention';
import { MemoryStore } from '../src/store/memory/memory-store';

function fill(store: MemoryStore, conv: string, n: number, at: (i: number) => number): number[] {
  const offsets: number[] = [];
  for (let i = 0; i < n; i++) offsets.push(store.log.append({ conv, at: at(i), from: 'a', head: '{"x":', tail: '}' }).offset);
  return offsets;
}

describe('actors: retention by age', () => {
  const now = 1_000_000_000;

  it('trims what is older than the limit in every conversation, past the first page of 1,000', async () => {
    const store = new MemoryStore();
    const old = fill(store, 'd:a:b', 2500, () => now - 10_000);
    fill(store, 'd:a:b', 3, () => now);
    fill(store, 'g:G1', 5, () => now);
    const r = new Retention(store.log, { retainCount: 100_000, retainAgeMs: 5000 });
    await new Promise<void>((res) => r.sweep(now, res));
    expect(store.log.top('d:a:b')).to.include({ count: 3, first: old.at(-1)! + 1 });
    expect(store.log.top('g:G1')!.count).to.equal(5);
    expect(r.stats().trimmed).to.equal(2500);
  });

  it('with ageTrims (cluster mode) proposes one trim per conversation and trims nothing until it is applied', async () => {
    const store = new MemoryStore();
    const old = fill(store, 'd:a:b', 10, (i) => now - 10_000 + i);
    fill(store, 'd:a:b', 2, () => now);
    const r = new Retention(store.log, { retainCount: 100_000, retainAgeMs: 5000 });
    const proposed: Array<[string, number]> = [];
    r.ageTrims = (conv, upTo) => proposed.push([conv, upTo]);
    await new Promise<void>((res) => r.sweep(now, res));
    expect(proposed).to.deep.equal([['d:a:b', old.at(-1)]]);
    expect(store.log.top('d:a:b')!.count).to.equal(12);
    r.trimApplied('d:a:b', old.at(-1)!);
    expect(store.log.top('d:a:b')!.count).to.equal(2);
  });
});
