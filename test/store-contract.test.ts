/**
 * The contract every `Store` backend keeps (src/store/ports.ts): one suite, run against each
 * backend through a factory. Backend-only checks (reopening, a killed writer) follow it.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  StoreError, accountConv, directConv, groupConv, type LogEntry, type NewEntry, type Store,
} from '../src/store/ports';
import { MemoryStore } from '../src/store/memory/memory-store';
import { LmdbStore } from '../src/store/lmdb/lmdb-store';
import { openStore } from '../src/store/open';
import { toStoreError } from '../src/store/lmdb/errors';
import { captureLogs, rm, tmpDir, type Captured } from './support/store-log';

/** A backend under test: a fresh store, and how to look at a backup of it. */
interface Harness {
  store: Store;
  /** Opens the copy `backup(dest)` wrote (undefined: the backend has no reader for it; check the files). */
  openBackup: ((dest: string) => Promise<Store>) | undefined;
  /** Closes and reopens the same data (undefined: not durable). */
  reopen: ((store: Store) => Promise<Store>) | undefined;
  cleanup(): void;
}

type Factory = () => Promise<Harness>;

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const C = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';

function entry(conv: string, i: number, extra: Partial<NewEntry> = {}): NewEntry {
  return { conv, at: 1_700_000_000_000 + i, from: A, head: `{"t":"msg","i":${i},"to":`, tail: ',"x":1', ...extra };
}

/** Every file under `dir`. */
function listFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => d.isDirectory() ? listFiles(path.join(dir, d.name)) : [path.join(dir, d.name)]);
}

/** The offsets of a page. */
function offs(page: LogEntry[]): number[] {
  return page.map((e) => e.offset);
}

/** Lets the current event-loop turn end (so turn-batched writes commit). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** `durable`: the data outlives the store object (adds the reopen checks). */
function contract(name: string, factory: Factory, durable: boolean): void {
  describe(`store contract: ${name}`, function () {
    let h: Harness;
    let store: Store;
    beforeEach(async () => {
      h = await factory();
      store = h.store;
    });
    afterEach(async () => {
      await store.close().catch(() => undefined);
      h.cleanup();
    });

    it('append gives increasing offsets across conversations and returns the stored record', () => {
      const g = groupConv('G1');
      const d = directConv(B, A);
      expect(d).to.equal(directConv(A, B));
      const e1 = store.log.append(entry(g, 1, { mid: 'c1' }));
      const e2 = store.log.append(entry(d, 2));
      const e3 = store.log.append(entry(accountConv(A), 3, { from: null }));
      const e4 = store.log.append(entry(g, 4));
      expect(e1.offset).to.be.greaterThan(0);
      expect(offs([e1, e2, e3, e4])).to.deep.equal([e1.offset, e1.offset + 1, e1.offset + 2, e1.offset + 3]);
      expect(e1).to.deep.equal({ ...entry(g, 1, { mid: 'c1' }), offset: e1.offset });
      expect(e3.from).to.equal(null);
      expect(e2).to.not.have.property('mid');
      const s = store.stats();
      expect(s.lastOffset).to.equal(e4.offset);
      expect(s.appended).to.equal(4);
      expect(s.epoch).to.equal(store.epoch);
      expect(s.damaged, 'nothing found damaged in a sound store').to.equal(0);
      expect(s.damagedLast).to.equal(null);
      expect(store.epoch).to.be.a('string').with.length.greaterThan(8);
    });

    it('read: forward and backward pages within after/before, oldest first', () => {
      const g = groupConv('R');
      const other = groupConv('S');
      const mine: number[] = [];
      for (let i = 0; i < 10; i++) {
        mine.push(store.log.append(entry(g, i)).offset);
        store.log.append(entry(other, i)); // interleaved: offsets of g are not contiguous
      }
      const all = store.log.read({ conv: g, limit: 100, direction: 'forward' });
      expect(offs(all)).to.deep.equal(mine);
      expect(all[3]).to.deep.equal({ ...entry(g, 3), offset: mine[3] });
      expect(offs(store.log.read({ conv: g, limit: 3, direction: 'forward' }))).to.deep.equal(mine.slice(0, 3));
      expect(offs(store.log.read({ conv: g, limit: 3, direction: 'backward' }))).to.deep.equal(mine.slice(7));
      expect(offs(store.log.read({ conv: g, after: mine[2], limit: 2, direction: 'forward' }))).to.deep.equal(mine.slice(3, 5));
      expect(offs(store.log.read({ conv: g, before: mine[5], limit: 2, direction: 'backward' }))).to.deep.equal(mine.slice(3, 5));
      expect(offs(store.log.read({ conv: g, after: mine[1], before: mine[6], limit: 100, direction: 'backward' })))
        .to.deep.equal(mine.slice(2, 6));
      expect(offs(store.log.read({ conv: g, after: mine[1], before: mine[6], limit: 100, direction: 'forward' })))
        .to.deep.equal(mine.slice(2, 6));
      // Bounds that fall between g's offsets (on the other conversation's) work alike.
      expect(offs(store.log.read({ conv: g, after: mine[4]! + 1, limit: 1, direction: 'forward' }))).to.deep.equal([mine[5]]);
      expect(store.log.read({ conv: g, after: mine[9], limit: 5, direction: 'forward' })).to.deep.equal([]);
      expect(store.log.read({ conv: g, before: mine[0], limit: 5, direction: 'backward' })).to.deep.equal([]);
      expect(store.log.read({ conv: g, after: mine[3], before: mine[4], limit: 5, direction: 'forward' })).to.deep.equal([]);
      expect(store.log.read({ conv: groupConv('none'), limit: 5, direction: 'backward' })).to.deep.equal([]);
      expect(store.log.read({ conv: g, limit: 0, direction: 'forward' })).to.deep.equal([]);
    });

    it('top: first, last and count of what is retained', () => {
      const g = groupConv('T');
      expect(store.log.top(g)).to.equal(undefined);
      const a = store.log.append(entry(g, 1)).offset;
      store.log.append(entry(groupConv('U'), 2));
      const b = store.log.append(entry(g, 3)).offset;
      expect(store.log.top(g)).to.deep.equal({ first: a, last: b, count: 2 });
    });

    it('trimThrough removes records, their mids, and updates top and conversations', () => {
      const g = groupConv('X');
      const o: number[] = [];
      for (let i = 0; i < 5; i++) o.push(store.log.append(entry(g, i, { mid: `m${i}` })).offset);
      const keep = store.log.append(entry(groupConv('Y'), 9, { mid: 'm0' })).offset;
      expect(store.log.trimThrough(g, o[1]!)).to.equal(2);
      expect(store.log.top(g)).to.deep.equal({ first: o[2], last: o[4], count: 3 });
      expect(offs(store.log.read({ conv: g, limit: 10, direction: 'forward' }))).to.deep.equal(o.slice(2));
      expect(store.log.findMid(g, A, 'm0')).to.equal(undefined);
      expect(store.log.findMid(g, A, 'm1')).to.equal(undefined);
      expect(store.log.findMid(g, A, 'm2')).to.equal(o[2]);
      expect(store.log.findMid(groupConv('Y'), A, 'm0'), 'another conversation is untouched').to.equal(keep);
      expect(store.log.trimThrough(g, o[1]!), 'nothing left at or below').to.equal(0);
      expect(store.log.trimThrough(g, o[4]! + 100)).to.equal(3);
      expect(store.log.top(g)).to.equal(undefined);
      expect(store.log.read({ conv: g, limit: 10, direction: 'backward' })).to.deep.equal([]);
      expect(store.log.conversations(undefined, 10)).to.deep.equal([groupConv('Y')]);
      expect(store.log.trimThrough(groupConv('never'), 100)).to.equal(0);
      expect(store.stats().trimmed).to.equal(5);
      // Offsets are not given again after trimming.
      expect(store.log.append(entry(g, 7)).offset).to.equal(keep + 1);
    });

    it('findMid finds a sender\'s message by its client id, per conversation and sender', () => {
      const g = groupConv('M');
      const o = store.log.append(entry(g, 1, { mid: 'abc' })).offset;
      store.log.append(entry(g, 2, { from: null, mid: 'srv' }));
      expect(store.log.findMid(g, A, 'abc')).to.equal(o);
      expect(store.log.findMid(g, B, 'abc')).to.equal(undefined);
      expect(store.log.findMid(groupConv('N'), A, 'abc')).to.equal(undefined);
      expect(store.log.findMid(g, A, 'zzz')).to.equal(undefined);
    });

    it('conversations: pages in id order', () => {
      const ids = [groupConv('b'), directConv(A, B), accountConv(C), groupConv('a'), groupConv('c')];
      for (const [i, c] of ids.entries()) store.log.append(entry(c, i));
      store.log.append(entry(groupConv('a'), 9));
      const sorted = [...ids].sort();
      expect(store.log.conversations(undefined, 100)).to.deep.equal(sorted);
      const p1 = store.log.conversations(undefined, 2);
      expect(p1).to.deep.equal(sorted.slice(0, 2));
      const p2 = store.log.conversations(p1[1], 2);
      expect(p2).to.deep.equal(sorted.slice(2, 4));
      const p3 = store.log.conversations(p2[1], 2);
      expect(p3).to.deep.equal(sorted.slice(4));
      expect(store.log.conversations(p3[0], 2)).to.deep.equal([]);
      expect(store.log.conversations('b', 10), 'after an id that is not there').to.deep.equal(sorted.filter((c) => c > 'b'));
    });

    it('positions: get and set per account', () => {
      expect(store.positions.get(A)).to.equal(undefined);
      store.positions.set(A, { delivered: 5, acked: 3, ackMode: true });
      store.positions.set(B, { delivered: 1, acked: 0, ackMode: false });
      expect(store.positions.get(A)).to.deep.equal({ delivered: 5, acked: 3, ackMode: true });
      store.positions.set(A, { delivered: 9, acked: 9, ackMode: false });
      expect(store.positions.get(A)).to.deep.equal({ delivered: 9, acked: 9, ackMode: false });
      expect(store.positions.get(B)).to.deep.equal({ delivered: 1, acked: 0, ackMode: false });
    });

    it('memberships: join, re-join, leave, in conversation id order', () => {
      const g1 = groupConv('z');
      const g2 = groupConv('a');
      const d = directConv(A, B);
      store.positions.join(A, g1, 10);
      store.positions.join(A, d, 1);
      store.positions.join(A, g2, 7);
      store.positions.join(B, g1, 3);
      expect(store.positions.membership(A, g1)).to.deep.equal({ conv: g1, since: 10 });
      expect(store.positions.memberships(A)).to.deep.equal([
        { conv: d, since: 1 }, { conv: g2, since: 7 }, { conv: g1, since: 10 },
      ]);
      store.positions.join(A, g1, 20);
      expect(store.positions.membership(A, g1)).to.deep.equal({ conv: g1, since: 20 });
      store.positions.leave(A, g2);
      store.positions.leave(A, groupConv('never'));
      expect(store.positions.membership(A, g2)).to.equal(undefined);
      expect(store.positions.memberships(A)).to.deep.equal([{ conv: d, since: 1 }, { conv: g1, since: 20 }]);
      expect(store.positions.memberships(B)).to.deep.equal([{ conv: g1, since: 3 }]);
      expect(store.positions.memberships(C)).to.deep.equal([]);
    });

    it('allMemberships: every account\'s, in (account, conversation) order, paged after a key, with this turn\'s joins and leaves', async () => {
      expect(store.positions.allMemberships(undefined, 10)).to.deep.equal([]);
      const [g1, g2, d] = [groupConv('a'), groupConv('b'), directConv(A, B)];
      store.positions.join(B, g1, 3);
      store.positions.join(A, g2, 7);
      store.positions.join(A, d, 1);
      store.positions.join(C, g2, 9);
      await nextTurn();
      store.positions.join(A, g1, 5);
      store.positions.leave(C, g2);
      store.positions.join(C, g1, 2);
      const all = [
        { account: C, conv: g1, since: 2 },
        { account: B, conv: g1, since: 3 },
        { account: A, conv: d, since: 1 }, { account: A, conv: g1, since: 5 }, { account: A, conv: g2, since: 7 },
      ].sort((x, y) => (x.account < y.account ? -1 : x.account > y.account ? 1 : x.conv < y.conv ? -1 : 1));
      expect(store.positions.allMemberships(undefined, 100)).to.deep.equal(all);
      // Paged: each page goes on after the last key of the one before, also within one account and past its end.
      const paged: unknown[] = [];
      for (let after: { account: string; conv: string } | undefined, pages = 0; pages < 10; pages++) {
        const page = store.positions.allMemberships(after, 2);
        expect(page.length).to.be.at.most(2);
        if (page.length === 0) break;
        paged.push(...page);
        after = page[page.length - 1];
      }
      expect(paged).to.deep.equal(all);
      expect(store.positions.allMemberships({ account: A, conv: 'zzz' }, 10)).to.deep.equal(all.filter((m) => m.account > A));
      expect(store.positions.allMemberships({ account: A, conv: '' }, 10)).to.deep.equal(all.filter((m) => m.account >= A));
      expect(store.positions.allMemberships(undefined, 0)).to.deep.equal([]);
    });

    it('states: get, put (replaced whole, copied), delete, list by prefix', () => {
      expect(store.states.get('group:1')).to.equal(undefined);
      const s = { members: [A, B], name: 'x', n: 1 };
      store.states.put('group:1', s);
      s.n = 2; // the store keeps what was put, not the caller's object
      expect(store.states.get('group:1')).to.deep.equal({ members: [A, B], name: 'x', n: 1 });
      store.states.put('group:1', { n: 3 });
      expect(store.states.get('group:1')).to.deep.equal({ n: 3 });
      for (const k of ['group:3', 'group:2', 'verify:book', 'grou', 'group;', 'groupx']) store.states.put(k, k);
      expect(store.states.list('group:', undefined, 10)).to.deep.equal(['group:1', 'group:2', 'group:3']);
      expect(store.states.list('group:', 'group:1', 1)).to.deep.equal(['group:2']);
      expect(store.states.list('group:', 'group:3', 10)).to.deep.equal([]);
      expect(store.states.list('verify:', undefined, 10)).to.deep.equal(['verify:book']);
      expect(store.states.list('', undefined, 3)).to.deep.equal(['grou', 'group:1', 'group:2']);
      store.states.put('group:2', undefined);
      expect(store.states.get('group:2')).to.equal(undefined);
      expect(store.states.list('group:', undefined, 10)).to.deep.equal(['group:1', 'group:3']);
      store.states.put('verify:book', [1, 'two', null, { x: false }]);
      expect(store.states.get('verify:book')).to.deep.equal([1, 'two', null, { x: false }]);
    });

    it('reads see earlier writes at once, in the same turn and after it', async () => {
      const g = groupConv('RYW');
      const e = store.log.append(entry(g, 1, { mid: 'q' }));
      expect(store.log.findMid(g, A, 'q')).to.equal(e.offset);
      const e2 = store.log.append(entry(g, 2));
      expect(store.log.top(g)).to.deep.equal({ first: e.offset, last: e2.offset, count: 2 });
      const e3 = store.log.append(entry(g, 3));
      expect(offs(store.log.read({ conv: g, limit: 10, direction: 'forward' }))).to.deep.equal([e.offset, e2.offset, e3.offset]);
      store.states.put('s', { v: 1 });
      store.states.put('s', { v: 2 });
      expect(store.states.get('s')).to.deep.equal({ v: 2 });
      store.positions.set(A, { delivered: e3.offset, acked: 0, ackMode: true });
      store.positions.join(A, g, e.offset);
      expect(store.positions.get(A)?.delivered).to.equal(e3.offset);
      expect(store.positions.membership(A, g)?.since).to.equal(e.offset);
      store.positions.leave(A, g);
      store.states.put('s', undefined);
      await nextTurn();
      expect(store.positions.membership(A, g)).to.equal(undefined);
      expect(store.states.get('s')).to.equal(undefined);
      expect(store.log.top(g)?.count).to.equal(3);
    });

    it('in one turn, appends, tops, mids, positions, memberships and states see each other, and persist their last values', async () => {
      const g = groupConv('OV');
      const hConv = directConv(A, C);
      const e1 = store.log.append(entry(g, 1, { mid: 'm1' }));
      store.log.append(entry(g, 2, { mid: 'm2' }));
      store.positions.set(A, { delivered: 1, acked: 1, ackMode: false });
      store.positions.join(A, g, 1);
      store.states.put('k', { v: 1 });
      store.states.put('gone', { v: 0 });
      await store.flush();
      const lmdb = store.stats().backend === 'lmdb';
      const c0 = store.stats().commits;
      if (lmdb) expect(c0).to.be.a('number');

      // One turn: every point read sees the committed data and the writes queued before it.
      expect(store.log.top(g)).to.deep.equal({ first: e1.offset, last: e1.offset + 1, count: 2 });
      const e3 = store.log.append(entry(g, 3, { mid: 'm3' }));
      expect(store.log.top(g)).to.deep.equal({ first: e1.offset, last: e3.offset, count: 3 });
      expect(store.log.findMid(g, A, 'm3')).to.equal(e3.offset);
      expect(store.log.findMid(g, A, 'm1'), 'committed').to.equal(e1.offset);
      expect(store.log.findMid(g, B, 'm3')).to.equal(undefined);
      expect(store.log.findMid(hConv, A, 'm3')).to.equal(undefined);
      expect(store.log.top(hConv)).to.equal(undefined);
      const h1 = store.log.append(entry(hConv, 4, { mid: 'm3' }));
      const h2 = store.log.append(entry(hConv, 5, { from: B, mid: 'm3' }));
      const e6 = store.log.append(entry(g, 6));
      expect(store.log.top(hConv)).to.deep.equal({ first: h1.offset, last: h2.offset, count: 2 });
      expect(store.log.top(g)).to.deep.equal({ first: e1.offset, last: e6.offset, count: 4 });
      expect(store.log.findMid(hConv, A, 'm3')).to.equal(h1.offset);
      expect(store.log.findMid(hConv, B, 'm3')).to.equal(h2.offset);
      const top = store.log.top(g)!;
      top.count = 99; // a copy: changing it changes nothing stored
      expect(store.log.top(g)?.count).to.equal(4);

      expect(store.positions.get(A)).to.deep.equal({ delivered: 1, acked: 1, ackMode: false });
      const pa = { delivered: e3.offset, acked: 1, ackMode: true };
      store.positions.set(A, pa);
      pa.delivered = 0;
      expect(store.positions.get(A)).to.deep.equal({ delivered: e3.offset, acked: 1, ackMode: true });
      store.positions.set(A, { delivered: e6.offset, acked: e3.offset, ackMode: true });
      expect(store.positions.get(A)).to.deep.equal({ delivered: e6.offset, acked: e3.offset, ackMode: true });
      expect(store.positions.get(B)).to.equal(undefined);
      store.positions.set(B, { delivered: 2, acked: 0, ackMode: false });
      expect(store.positions.get(B)).to.deep.equal({ delivered: 2, acked: 0, ackMode: false });

      expect(store.positions.membership(A, g), 'committed').to.deep.equal({ conv: g, since: 1 });
      store.positions.leave(A, g);
      expect(store.positions.membership(A, g)).to.equal(undefined);
      store.positions.join(A, g, 9);
      expect(store.positions.membership(A, g)).to.deep.equal({ conv: g, since: 9 });
      store.positions.leave(A, g);
      expect(store.positions.membership(A, g), 'left again').to.equal(undefined);
      expect(store.positions.membership(A, hConv)).to.equal(undefined);
      store.positions.join(A, hConv, 0);
      store.positions.join(A, hConv, 5);
      expect(store.positions.membership(A, hConv)).to.deep.equal({ conv: hConv, since: 5 });
      store.positions.join(C, hConv, 0);
      expect(store.positions.membership(C, hConv)).to.deep.equal({ conv: hConv, since: 0 });

      expect(store.states.get('k'), 'committed').to.deep.equal({ v: 1 });
      const s2 = { v: 2, list: [1] };
      store.states.put('k', s2);
      s2.list.push(2);
      const got = store.states.get('k') as { v: number; list: number[] };
      expect(got).to.deep.equal({ v: 2, list: [1] });
      got.v = 77; // what get returns is a copy too
      expect(store.states.get('k')).to.deep.equal({ v: 2, list: [1] });
      store.states.put('gone', undefined);
      expect(store.states.get('gone')).to.equal(undefined);
      store.states.put('new', 'x');
      store.states.put('new', undefined);
      store.states.put('new', ['y']);
      expect(store.states.get('new')).to.deep.equal(['y']);

      if (lmdb) {
        expect(store.stats().commits, 'no point read committed').to.equal(c0);
        expect(store.stats().pendingWrites).to.be.greaterThan(0);
      }
      // The turn's one batch, committed (on the writer thread: some time after the turn).
      await store.flush();
      if (lmdb) expect(store.stats().commits, 'the turn committed once').to.equal((c0 as number) + 1);

      // What was committed is each key's last value; range reads see it too.
      const check = (s: Store): void => {
        expect(s.log.top(g)).to.deep.equal({ first: e1.offset, last: e6.offset, count: 4 });
        expect(s.log.top(hConv)).to.deep.equal({ first: h1.offset, last: h2.offset, count: 2 });
        expect(s.log.findMid(g, A, 'm3')).to.equal(e3.offset);
        expect(s.log.findMid(hConv, B, 'm3')).to.equal(h2.offset);
        expect(offs(s.log.read({ conv: g, limit: 10, direction: 'forward' }))).to.deep.equal([e1.offset, e1.offset + 1, e3.offset, e6.offset]);
        expect(s.positions.get(A)).to.deep.equal({ delivered: e6.offset, acked: e3.offset, ackMode: true });
        expect(s.positions.get(B)).to.deep.equal({ delivered: 2, acked: 0, ackMode: false });
        expect(s.positions.membership(A, g)).to.equal(undefined);
        expect(s.positions.memberships(A)).to.deep.equal([{ conv: hConv, since: 5 }]);
        expect(s.positions.memberships(C)).to.deep.equal([{ conv: hConv, since: 0 }]);
        expect(s.states.get('k')).to.deep.equal({ v: 2, list: [1] });
        expect(s.states.get('gone')).to.equal(undefined);
        expect(s.states.get('new')).to.deep.equal(['y']);
        expect(s.states.list('', undefined, 10)).to.deep.equal(['k', 'new']);
      };
      check(store);
      if (h.reopen !== undefined) {
        store = await h.reopen(store);
        check(store);
      }
    });

    it('trimming in the middle of a turn: appends, tops and mids before and after it agree', () => {
      const g = groupConv('TT');
      const o: number[] = [];
      for (let i = 0; i < 5; i++) o.push(store.log.append(entry(g, i, { mid: `t${i}` })).offset);
      expect(store.log.top(g)).to.deep.equal({ first: o[0], last: o[4], count: 5 });
      expect(store.log.trimThrough(g, o[1]!)).to.equal(2);
      expect(store.log.top(g)).to.deep.equal({ first: o[2], last: o[4], count: 3 });
      const n = store.log.append(entry(g, 5, { mid: 't5' })).offset;
      expect(store.log.top(g)).to.deep.equal({ first: o[2], last: n, count: 4 });
      expect(store.log.findMid(g, A, 't0')).to.equal(undefined);
      expect(store.log.findMid(g, A, 't5')).to.equal(n);
      expect(store.log.trimThrough(g, n)).to.equal(4);
      expect(store.log.top(g)).to.equal(undefined);
      const m = store.log.append(entry(g, 6)).offset;
      expect(store.log.top(g)).to.deep.equal({ first: m, last: m, count: 1 });
      expect(store.log.conversations(undefined, 10)).to.deep.equal([g]);
    });

    it('the delivery actor\'s turn of 1,000 messages (findMid, append, top, membership) commits once', async () => {
      await nextTurn();
      const lmdb = store.stats().backend === 'lmdb';
      const c0 = store.stats().commits as number;
      const convs = [directConv(A, B), directConv(A, C), directConv(B, C), groupConv('busy')];
      const seen = new Map<string, number>();
      for (let i = 0; i < 1000; i++) {
        const conv = convs[i % convs.length]!;
        const mid = `d${i}`;
        expect(store.log.findMid(conv, A, mid)).to.equal(undefined);
        if (store.positions.membership(A, conv) === undefined) store.positions.join(A, conv, 0);
        const e = store.log.append(entry(conv, i, { mid }));
        seen.set(conv, (seen.get(conv) ?? 0) + 1);
        expect(store.log.top(conv)?.count).to.equal(seen.get(conv));
        expect(store.log.top(conv)?.last).to.equal(e.offset);
        expect(store.log.findMid(conv, A, mid)).to.equal(e.offset);
        expect(store.positions.membership(A, conv)).to.deep.equal({ conv, since: 0 });
      }
      if (lmdb) {
        expect(store.stats().commits, 'nothing committed during the turn').to.equal(c0);
        expect(store.stats().pendingWrites).to.be.greaterThan(1000);
      }
      await store.flush();
      if (lmdb) expect(store.stats().commits, 'one commit for the turn').to.equal(c0 + 1);
      expect(store.log.top(convs[0]!)?.count).to.equal(250);
      // A range read after a write still waits for its commit (it reads the data, not the overlay).
      const e = store.log.append(entry(convs[0]!, 1000));
      expect(store.log.read({ conv: convs[0]!, limit: 1, direction: 'backward' })[0]?.offset).to.equal(e.offset);
      if (lmdb) expect(store.stats().commits).to.equal(c0 + 2);
    });

    it('flush resolves, also many in one turn; a closed store refuses with StoreError closed', async () => {
      const g = groupConv('F');
      const flushes: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) {
        store.log.append(entry(g, i));
        flushes.push(store.flush());
      }
      await Promise.all(flushes);
      await store.flush();
      expect(store.log.top(g)?.count).to.equal(20);
      await store.close();
      expect(() => store.log.append(entry(g, 99))).to.throw(StoreError).with.property('code', 'closed');
      expect(() => store.log.read({ conv: g, limit: 1, direction: 'forward' })).to.throw(StoreError).with.property('code', 'closed');
      const err = await store.flush().then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(StoreError).with.property('code', 'closed');
    });

    it('redact overwrites a record in place: same offset, time, sender and mid; gone from reads and backups', async () => {
      const g = groupConv('R');
      const e1 = store.log.append(entry(g, 1, { mid: 'r1', head: '{"msg":"SECRET-REDACT-1","to":' }));
      const e2 = store.log.append(entry(g, 2));
      // Appended in this same turn: redact still finds it.
      expect(store.log.redact(g, e1.offset, { head: '{"gone":true,"to":', tail: ',"deleted":9' })).to.equal(true);
      const page = store.log.read({ conv: g, limit: 10, direction: 'forward' });
      expect(page).to.deep.equal([{ ...e1, head: '{"gone":true,"to":', tail: ',"deleted":9' }, e2]);
      expect(store.log.findMid(g, A, 'r1')).to.equal(e1.offset);
      expect(store.log.top(g)).to.deep.equal({ first: e1.offset, last: e2.offset, count: 2 });
      // Not there: nothing written, false.
      expect(store.log.redact(g, e2.offset + 100, { head: 'x', tail: 'y' })).to.equal(false);
      expect(store.log.redact(directConv(A, B), e1.offset, { head: 'x', tail: 'y' })).to.equal(false);
      store.log.trimThrough(g, e1.offset);
      expect(store.log.redact(g, e1.offset, { head: 'x', tail: 'y' })).to.equal(false);
      await nextTurn();
      expect(store.log.read({ conv: g, limit: 10, direction: 'forward' })).to.deep.equal([e2]);
      const e3 = store.log.append(entry(g, 3, { head: '{"msg":"SECRET-REDACT-3","to":' }));
      await nextTurn();
      expect(store.log.redact(g, e3.offset, { head: '{"to":', tail: '' })).to.equal(true);
      await store.flush();
      const dest = tmpDir('contract-redact');
      try {
        fs.rmSync(dest, { recursive: true, force: true });
        await store.backup(dest);
        // The copy holds no trace of the content (a compacting copy has no free pages).
        for (const f of listFiles(dest)) expect(fs.readFileSync(f).includes('SECRET-REDACT'), f).to.equal(false);
      } finally {
        rm(dest);
      }
    });

    it('append at given offsets, in order: stored there, across conversations; lastOffset is the highest', async () => {
      const g = groupConv('EX');
      const d = directConv(A, B);
      const e1 = store.log.append(entry(g, 1, { mid: 'x1' }), 100);
      const e2 = store.log.append(entry(d, 2), 2_000);
      const e3 = store.log.append(entry(g, 3), 3_000_001);
      expect(e1).to.deep.equal({ ...entry(g, 1, { mid: 'x1' }), offset: 100 });
      expect(offs([e2, e3])).to.deep.equal([2_000, 3_000_001]);
      expect(store.stats().lastOffset).to.equal(3_000_001);
      expect(store.stats().appended).to.equal(3);
      expect(store.log.top(g)).to.deep.equal({ first: 100, last: 3_000_001, count: 2 });
      expect(store.log.findMid(g, A, 'x1')).to.equal(100);
      await nextTurn();
      expect(store.log.read({ conv: g, limit: 10, direction: 'forward' })).to.deep.equal([e1, e3]);
      expect(store.log.read({ conv: d, limit: 10, direction: 'backward' })).to.deep.equal([e2]);
    });

    it('append at given offsets out of order, in one conversation and across: pages in offset order, tops right', async () => {
      const g = groupConv('OO');
      const h = groupConv('OP');
      const order: [string, number][] = [[g, 500], [h, 450], [g, 300], [g, 400], [h, 50], [g, 100], [g, 700], [g, 200]];
      for (const [conv, o] of order) store.log.append(entry(conv, o, { mid: `o${o}` }), o);
      const check = (): void => {
        expect(store.log.top(g)).to.deep.equal({ first: 100, last: 700, count: 6 });
        expect(store.log.top(h)).to.deep.equal({ first: 50, last: 450, count: 2 });
        expect(offs(store.log.read({ conv: g, limit: 100, direction: 'forward' }))).to.deep.equal([100, 200, 300, 400, 500, 700]);
        expect(offs(store.log.read({ conv: g, limit: 2, direction: 'forward' }))).to.deep.equal([100, 200]);
        expect(offs(store.log.read({ conv: g, limit: 2, direction: 'backward' }))).to.deep.equal([500, 700]);
        expect(offs(store.log.read({ conv: g, after: 200, before: 700, limit: 2, direction: 'backward' }))).to.deep.equal([400, 500]);
        expect(offs(store.log.read({ conv: g, after: 150, limit: 2, direction: 'forward' }))).to.deep.equal([200, 300]);
        expect(offs(store.log.read({ conv: h, limit: 10, direction: 'forward' }))).to.deep.equal([50, 450]);
        expect(store.log.read({ conv: g, limit: 100, direction: 'forward' })[1]).to.deep.equal({ ...entry(g, 200, { mid: 'o200' }), offset: 200 });
        expect(store.log.findMid(g, A, 'o300')).to.equal(300);
        expect(store.log.findMid(h, A, 'o50')).to.equal(50);
        expect(store.log.conversations(undefined, 10)).to.deep.equal([g, h]);
        expect(store.stats().lastOffset).to.equal(700);
      };
      check(); // in the turn of the appends
      await nextTurn();
      check(); // committed
    });

    it('append at an offset the conversation holds is a no-op returning the stored record, in the turn and after', async () => {
      const g = groupConv('ID');
      const e1 = store.log.append(entry(g, 1, { mid: 'i1' }), 10);
      const e2 = store.log.append(entry(g, 2), 30);
      store.log.append(entry(g, 3), 20);
      // The same ledger entry applied again, in the same turn: nothing changes.
      expect(store.log.append(entry(g, 1, { mid: 'i1' }), 10)).to.deep.equal(e1);
      expect(store.log.append(entry(g, 9, { head: 'other', mid: 'other' }), 30), 'the stored record, not the one given').to.deep.equal(e2);
      expect(store.log.top(g)).to.deep.equal({ first: 10, last: 30, count: 3 });
      expect(store.log.findMid(g, A, 'other')).to.equal(undefined);
      await nextTurn();
      // After the commit, and after a redaction: the record as it is now.
      expect(store.log.redact(g, 10, { head: '{"gone":1,"to":', tail: '' })).to.equal(true);
      const redacted = { ...e1, head: '{"gone":1,"to":', tail: '' };
      expect(store.log.append(entry(g, 1, { mid: 'i1' }), 10)).to.deep.equal(redacted);
      expect(store.log.append(entry(g, 2), 30)).to.deep.equal(e2);
      expect(store.log.top(g)).to.deep.equal({ first: 10, last: 30, count: 3 });
      expect(store.stats().appended, 'counted once').to.equal(3);
      await nextTurn();
      expect(store.log.read({ conv: g, limit: 10, direction: 'forward' }).map((e) => e.head)).to.deep.equal([redacted.head, entry(g, 3).head, e2.head]);
      expect(store.log.top(g)).to.deep.equal({ first: 10, last: 30, count: 3 });
      // Another conversation does not hold it: stored there.
      expect(store.log.append(entry(groupConv('IE'), 4), 25).offset).to.equal(25);
      expect(store.log.top(groupConv('IE'))).to.deep.equal({ first: 25, last: 25, count: 1 });
    });

    it('offsets given and numbered mix: a numbered append goes on above the highest given one', async () => {
      const g = groupConv('MX');
      const a = store.log.append(entry(g, 1));
      store.log.append(entry(g, 2), a.offset + 1_000);
      expect(store.log.append(entry(g, 3)).offset).to.equal(a.offset + 1_001);
      // Below the last offset: lastOffset stays, the next numbered one goes on from it.
      store.log.append(entry(g, 4), a.offset + 500);
      expect(store.stats().lastOffset).to.equal(a.offset + 1_001);
      const b = store.log.append(entry(g, 5, { mid: 'b' }));
      expect(b.offset).to.equal(a.offset + 1_002);
      // A numbered record of this very turn given again by its offset: found, not stored twice.
      expect(store.log.append(entry(g, 6), b.offset)).to.deep.equal(b);
      expect(store.log.append(entry(g, 7), a.offset)).to.deep.equal(a);
      expect(store.log.top(g)).to.deep.equal({ first: a.offset, last: b.offset, count: 5 });
      await nextTurn();
      expect(offs(store.log.read({ conv: g, limit: 10, direction: 'forward' })))
        .to.deep.equal([a.offset, a.offset + 500, a.offset + 1_000, a.offset + 1_001, b.offset]);
      expect(store.log.append(entry(g, 8), b.offset)).to.deep.equal(b);
      expect(store.log.top(g)?.count).to.equal(5);
    });

    it('trim and redact on a log appended out of order', async () => {
      const g = groupConv('TR');
      for (const o of [50, 10, 30, 20, 40]) store.log.append(entry(g, o, { mid: `t${o}` }), o);
      expect(store.log.trimThrough(g, 25)).to.equal(2);
      expect(store.log.top(g)).to.deep.equal({ first: 30, last: 50, count: 3 });
      expect(store.log.findMid(g, A, 't10')).to.equal(undefined);
      expect(store.log.findMid(g, A, 't20')).to.equal(undefined);
      expect(store.log.findMid(g, A, 't30')).to.equal(30);
      expect(store.log.redact(g, 40, { head: '{"gone":1,"to":', tail: '' })).to.equal(true);
      expect(store.log.redact(g, 20, { head: 'x', tail: 'y' }), 'trimmed: not there').to.equal(false);
      // A record older than all that are left (a backfill going on), then one in the middle.
      store.log.append(entry(g, 5, { mid: 't5' }), 5);
      store.log.append(entry(g, 45), 45);
      expect(store.log.top(g)).to.deep.equal({ first: 5, last: 50, count: 5 });
      expect(store.log.redact(g, 45, { head: '{"gone":2,"to":', tail: '' }), 'queued this turn').to.equal(true);
      await nextTurn();
      const page = store.log.read({ conv: g, limit: 10, direction: 'forward' });
      expect(offs(page)).to.deep.equal([5, 30, 40, 45, 50]);
      expect(page.map((e) => e.head)).to.deep.equal([entry(g, 5).head, entry(g, 30).head, '{"gone":1,"to":', '{"gone":2,"to":', entry(g, 50).head]);
      expect(store.log.trimThrough(g, 40)).to.equal(3);
      expect(store.log.top(g)).to.deep.equal({ first: 45, last: 50, count: 2 });
      expect(store.log.findMid(g, A, 't5')).to.equal(undefined);
      expect(store.log.trimThrough(g, 50)).to.equal(2);
      expect(store.log.top(g)).to.equal(undefined);
      expect(store.log.conversations(undefined, 10)).to.deep.equal([]);
      expect(store.stats().lastOffset, 'trimming takes no offset back').to.equal(50);
    });

    it('append refuses an offset that is no positive safe integer, and stores nothing', () => {
      const g = groupConv('BAD');
      for (const o of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER, 2 ** 60]) {
        expect(() => store.log.append(entry(g, 1), o), String(o)).to.throw(RangeError);
      }
      expect(store.log.top(g)).to.equal(undefined);
      expect(store.stats().lastOffset).to.equal(0);
      expect(store.stats().appended).to.equal(0);
    });

    it('backup writes a copy of everything written before it', async () => {
      const g = groupConv('B');
      const e1 = store.log.append(entry(g, 1, { mid: 'b1' }));
      const e2 = store.log.append(entry(directConv(A, C), 2));
      store.positions.set(A, { delivered: e2.offset, acked: e1.offset, ackMode: true });
      store.positions.join(A, g, e1.offset);
      store.states.put('group:B', { n: 1 });
      const dest = tmpDir('contract-backup');
      try {
        fs.rmSync(dest, { recursive: true, force: true }); // backup makes it
        await store.backup(dest);
        store.log.append(entry(g, 3)); // after the copy: not in it
        expect(fs.readdirSync(dest).length).to.be.greaterThan(0);
        if (h.openBackup === undefined) {
          const dump = JSON.parse(fs.readFileSync(path.join(dest, 'store.json'), 'utf8')) as { logs: LogEntry[]; states: Record<string, unknown> };
          expect(dump.logs).to.deep.equal([e1, e2]);
          expect(dump.states).to.deep.equal({ 'group:B': { n: 1 } });
          return;
        }
        const copy = await h.openBackup(dest);
        try {
          expect(copy.epoch).to.equal(store.epoch);
          expect(copy.log.read({ conv: g, limit: 10, direction: 'forward' })).to.deep.equal([e1]);
          expect(copy.log.read({ conv: e2.conv, limit: 10, direction: 'forward' })).to.deep.equal([e2]);
          expect(copy.log.findMid(g, A, 'b1')).to.equal(e1.offset);
          expect(copy.positions.get(A)).to.deep.equal({ delivered: e2.offset, acked: e1.offset, ackMode: true });
          expect(copy.positions.memberships(A)).to.deep.equal([{ conv: g, since: e1.offset }]);
          expect(copy.states.get('group:B')).to.deep.equal({ n: 1 });
          expect(copy.stats().lastOffset).to.equal(e2.offset);
        } finally {
          await copy.close();
        }
      } finally {
        rm(dest);
      }
    });

    if (durable) it('reopening keeps the epoch and the data, and offsets continue (never reused)', async () => {
      expect(h.reopen, 'a durable backend can be reopened').to.be.a('function');
      const g = groupConv('P');
      const e1 = store.log.append(entry(g, 1, { mid: 'p1' }));
      const e2 = store.log.append(entry(g, 2));
      store.states.put('group:P', { ok: true });
      const epoch = store.epoch;
      store = await h.reopen!(store);
      expect(store.epoch).to.equal(epoch);
      expect(store.log.read({ conv: g, limit: 10, direction: 'forward' })).to.deep.equal([e1, e2]);
      expect(store.log.findMid(g, A, 'p1')).to.equal(e1.offset);
      expect(store.states.get('group:P')).to.deep.equal({ ok: true });
      expect(store.stats().lastOffset).to.equal(e2.offset);
      // Even with the conversation trimmed to nothing, the sequence goes on where it was.
      expect(store.log.trimThrough(g, e2.offset)).to.equal(2);
      store = await h.reopen!(store);
      expect(store.log.conversations(undefined, 10)).to.deep.equal([]);
      const e3 = store.log.append(entry(groupConv('Q'), 3));
      expect(e3.offset).to.equal(e2.offset + 1);
      store = await h.reopen!(store);
      expect(store.log.append(entry(groupConv('Q'), 4)).offset).to.equal(e3.offset + 1);
      expect(store.epoch).to.equal(epoch);
    });

    if (durable) it('reopening after appends at given offsets keeps lastOffset, tops and records', async () => {
      const g = groupConv('RG');
      const h2 = groupConv('RH');
      for (const [conv, o] of [[g, 70], [g, 20], [h2, 60], [g, 90], [g, 40]] as const) store.log.append(entry(conv, o, { mid: `r${o}` }), o);
      store = await h.reopen!(store);
      expect(store.stats().lastOffset).to.equal(90);
      expect(store.log.top(g)).to.deep.equal({ first: 20, last: 90, count: 4 });
      expect(store.log.top(h2)).to.deep.equal({ first: 60, last: 60, count: 1 });
      expect(offs(store.log.read({ conv: g, limit: 10, direction: 'forward' }))).to.deep.equal([20, 40, 70, 90]);
      expect(store.log.findMid(g, A, 'r40')).to.equal(40);
      // Applied again after the restart: no-ops; a record below them all still goes in.
      expect(store.log.append(entry(g, 70, { mid: 'r70' }), 70)).to.deep.equal({ ...entry(g, 70, { mid: 'r70' }), offset: 70 });
      store.log.append(entry(g, 10), 10);
      expect(store.log.top(g)).to.deep.equal({ first: 10, last: 90, count: 5 });
      expect(store.log.append(entry(h2, 1)).offset).to.equal(91);
      store = await h.reopen!(store);
      expect(store.log.top(g)).to.deep.equal({ first: 10, last: 90, count: 5 });
      expect(store.log.top(h2)).to.deep.equal({ first: 60, last: 91, count: 2 });
      expect(store.stats().lastOffset).to.equal(91);
    });
  });
}

let logs: Captured;
before(() => { logs = captureLogs(); });
after(() => logs.restore());

contract('memory', async () => ({
  store: await openStore({ backend: 'memory', dir: '', fsync: 'off' }),
  openBackup: undefined,
  reopen: undefined,
  cleanup: () => undefined,
}), false);

// Committing on the writer thread (the default) under each fsync policy, and inline.
const lmdbKinds = [
  ...(['grouped', 'always', 'off'] as const).map((fsync) => ({ fsync, writer: 'thread' as const })),
  { fsync: 'grouped' as const, writer: 'inline' as const },
];
for (const { fsync, writer } of lmdbKinds) {
  contract(`lmdb (fsync ${fsync}${writer === 'inline' ? ', inline writer' : ''})`, async () => {
    const dir = tmpDir(`contract-lmdb-${fsync}-${writer}`);
    return {
      store: await openStore({ backend: 'lmdb', dir, fsync, writer }),
      openBackup: (dest) => openStore({ backend: 'lmdb', dir: dest, fsync, writer }),
      reopen: async (s) => {
        await s.close();
        return openStore({ backend: 'lmdb', dir, fsync, writer });
      },
      cleanup: () => rm(dir),
    };
  }, true);
}

describe('lmdb store: errors', () => {
  it('maps a full disk or map to StoreError full, a closed env to closed, others to io', () => {
    const enospc = Object.assign(new Error('write failed'), { code: 'ENOSPC' });
    expect(toStoreError(enospc, 'commit').code).to.equal('full');
    expect(toStoreError(new Error('MDB_MAP_FULL: Environment mapsize limit reached'), 'commit').code).to.equal('full');
    expect(toStoreError(new Error('MDB_CORRUPTED: Located page was wrong type'), 'read').code).to.equal('corrupt');
    expect(toStoreError(new Error('The database has been closed and you can not transact on it'), 'x').code).to.equal('closed');
    const io = toStoreError(new Error('EIO'), 'read');
    expect(io).to.be.instanceOf(StoreError);
    expect(io.code).to.equal('io');
    expect(io.cause).to.be.instanceOf(Error);
  });
});

describe('lmdb store: a separate store has its own epoch', () => {
  it('two environments, two epochs; a memory store has its own too', async () => {
    const d1 = tmpDir('epoch1');
    const d2 = tmpDir('epoch2');
    try {
      const s1 = LmdbStore.open({ dir: d1, fsync: 'off' });
      const s2 = LmdbStore.open({ dir: d2, fsync: 'off' });
      expect(s1.epoch).to.not.equal(s2.epoch);
      expect(new MemoryStore().epoch).to.not.equal(s1.epoch);
      expect(s1.stats().backend).to.equal('lmdb');
      expect(fs.existsSync(path.join(d1, 'store'))).to.equal(true);
      await s1.close();
      await s2.close();
    } finally {
      rm(d1);
      rm(d2);
    }
  });
});

interface Flushed { offset: number; conv: string; head: string; mid: string }

/** Runs test/support/lmdb-store-child.ts until `n` records were reported flushed, then SIGKILLs it. */
async function runAndKill(dir: string, fsync: string, n: number): Promise<Flushed[]> {
  const child = spawn(process.execPath, [path.join(__dirname, 'support', 'lmdb-store-child.js'), dir, fsync], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, IMGC_LOG_LEVEL: 'silent' },
  });
  const got: Flushed[] = [];
  let partial = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  return new Promise<Flushed[]>((resolve, reject) => {
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      const lines = (partial + s).split('\n');
      partial = lines.pop()!;
      for (const line of lines) got.push(JSON.parse(line) as Flushed);
      if (!killed && got.length >= n) {
        killed = true;
        child.kill('SIGKILL'); // mid-stream: it keeps appending until the signal lands
      }
    });
    child.on('exit', (_code, signal) => {
      if (signal === 'SIGKILL') resolve(got);
      else reject(new Error(`child exited on its own: ${err}`));
    });
  });
}

describe('lmdb store: records reported flushed survive a SIGKILL', function () {
  this.timeout(60_000);
  for (const fsync of ['grouped', 'always', 'off'] as const) {
    it(`fsync ${fsync}`, async () => {
      const dir = tmpDir(`lmdb-kill-${fsync}`);
      try {
        const first = await runAndKill(dir, fsync, 300);
        expect(first.length).to.be.at.least(300);
        // A second life continues the sequence after the first.
        const second = await runAndKill(dir, fsync, 30);
        const store = LmdbStore.open({ dir, fsync: 'off' });
        try {
          const all = [...first, ...second];
          const offsets = all.map((f) => f.offset);
          expect(new Set(offsets).size, 'no offset given twice').to.equal(offsets.length);
          expect(second[0]!.offset).to.be.greaterThan(first[first.length - 1]!.offset);
          for (const f of all) {
            const [rec] = store.log.read({ conv: f.conv, after: f.offset - 1, before: f.offset + 1, limit: 1, direction: 'forward' });
            expect(rec, `offset ${f.offset}`).to.not.equal(undefined);
            expect(rec!.head).to.equal(f.head);
            expect(rec!.offset).to.equal(f.offset);
            expect(store.log.findMid(f.conv, 'x', f.mid)).to.equal(f.offset);
          }
          expect(store.stats().lastOffset).to.be.at.least(Math.max(...offsets));
        } finally {
          await store.close();
        }
      } finally {
        rm(dir);
      }
    });
  }
});

describe('lmdb store: the top cache, at any size, agrees with the memory store', () => {
  for (const topCache of [0, 2, 10_000]) {
    it(`topCache ${topCache}: random appends, trims and turns`, async () => {
      const dir = tmpDir(`lmdb-topcache-${topCache}`);
      const lmdb = LmdbStore.open({ dir, fsync: 'off', topCache });
      const mem = new MemoryStore();
      try {
        let seed = 7;
        const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
        const convs = [0, 1, 2, 3, 4, 5, 6].map((i) => groupConv(`c${i}`));
        for (let step = 0; step < 3000; step++) {
          const conv = convs[rnd(convs.length)]!;
          const r = rnd(100);
          if (r < 80) {
            const e = entry(conv, step, { mid: `r${step}` });
            expect(lmdb.log.append(e).offset).to.equal(mem.log.append(e).offset);
          } else if (r < 83) {
            const upTo = (mem.log.top(conv)?.first ?? 0) + rnd(20);
            expect(lmdb.log.trimThrough(conv, upTo)).to.equal(mem.log.trimThrough(conv, upTo));
          } else if (r < 86) {
            await nextTurn();
          }
          expect(lmdb.log.top(conv), `step ${step}`).to.deep.equal(mem.log.top(conv));
          const probe = `r${step - rnd(50)}`;
          expect(lmdb.log.findMid(conv, A, probe)).to.equal(mem.log.findMid(conv, A, probe));
        }
        await lmdb.flush();
        for (const conv of convs) expect(lmdb.log.top(conv)).to.deep.equal(mem.log.top(conv));
      } finally {
        await lmdb.close();
        rm(dir);
      }
    });
  }
});

describe('lmdb store: appends at given offsets, out of order, agree with the memory store at any top cache size', () => {
  for (const topCache of [0, 2, 10_000]) {
    it(`topCache ${topCache}: random offsets (some applied again, some numbered), trims, redactions and turns`, async () => {
      const dir = tmpDir(`lmdb-given-${topCache}`);
      const lmdb = LmdbStore.open({ dir, fsync: 'off', topCache });
      const mem = new MemoryStore();
      try {
        let seed = 11;
        const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
        const convs = [0, 1, 2, 3, 4].map((i) => groupConv(`v${i}`));
        // Distinct offsets, shuffled, far enough apart that numbered appends never reach the next one.
        const pool = Array.from({ length: 2000 }, (_, i) => (i + 1) * 1000);
        for (let i = pool.length - 1; i > 0; i--) { const j = rnd(i + 1); [pool[i], pool[j]] = [pool[j]!, pool[i]!]; }
        const given: [string, number][] = [];
        for (let step = 0; step < 3000; step++) {
          const conv = convs[rnd(convs.length)]!;
          const r = rnd(100);
          if (r < 60 && pool.length > 0) {
            const o = pool.pop()!;
            given.push([conv, o]);
            const e = entry(conv, step, { mid: `g${step}` });
            expect(lmdb.log.append(e, o)).to.deep.equal(mem.log.append(e, o));
          } else if (r < 75 && given.length > 0) {
            const [c, o] = given[rnd(given.length)]!;
            const e = entry(c, step, { mid: `again${step}` });
            expect(lmdb.log.append(e, o), `again ${c} ${o}`).to.deep.equal(mem.log.append(e, o));
          } else if (r < 82) {
            const e = entry(conv, step, { mid: `n${step}` });
            expect(lmdb.log.append(e)).to.deep.equal(mem.log.append(e));
          } else if (r < 85) {
            const upTo = (mem.log.top(conv)?.first ?? 0) + rnd(200_000);
            expect(lmdb.log.trimThrough(conv, upTo)).to.equal(mem.log.trimThrough(conv, upTo));
          } else if (r < 88 && given.length > 0) {
            const [c, o] = given[rnd(given.length)]!;
            const rep = { head: `{"r":${step},"to":`, tail: '' };
            expect(lmdb.log.redact(c, o, rep)).to.equal(mem.log.redact(c, o, rep));
          } else if (r < 92) {
            await nextTurn();
          }
          expect(lmdb.log.top(conv), `step ${step}`).to.deep.equal(mem.log.top(conv));
          const probe = `g${step - rnd(50)}`;
          expect(lmdb.log.findMid(conv, A, probe)).to.equal(mem.log.findMid(conv, A, probe));
          if (step % 100 === 0) {
            const q = { conv, after: rnd(2_000_000), limit: 5, direction: rnd(2) === 0 ? 'forward' as const : 'backward' as const };
            expect(lmdb.log.read(q)).to.deep.equal(mem.log.read(q));
          }
        }
        await lmdb.flush();
        expect(lmdb.stats().lastOffset).to.equal(mem.stats().lastOffset);
        expect(lmdb.stats().appended).to.equal(mem.stats().appended);
        for (const conv of convs) {
          expect(lmdb.log.top(conv)).to.deep.equal(mem.log.top(conv));
          expect(lmdb.log.read({ conv, limit: 10_000, direction: 'forward' })).to.deep.equal(mem.log.read({ conv, limit: 10_000, direction: 'forward' }));
        }
      } finally {
        await lmdb.close();
        rm(dir);
      }
    });
  }
});
