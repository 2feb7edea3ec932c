/**
 * `history` (src/actors/history.ts) over a MemoryStore, without a server: pages both ways with
 * `more` right at the ends, the limit clamped, direct frames addressed as they were sent, and the
 * permission and parameter refusals.
 */
import { expect } from 'chai';
import { readHistory, HISTORY_MAX } from '../src/actors/history';
import { directTemplate, groupTemplate, type Request } from '../src/protocol/frames';
import { MemoryStore } from '../src/store/memory/memory-store';
import { directConv, groupConv } from '../src/store/ports';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const C = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';
const G = 'GDgroupAAAAA';

type F = Record<string, any>;

function setup(n: number): { s: MemoryStore; offs: number[] } {
  const s = new MemoryStore();
  const offs: number[] = [];
  for (let i = 0; i < n; i++) {
    const from = i % 2 === 0 ? A : B;
    const tpl = directTemplate(from, JSON.stringify({ i }));
    offs.push(s.log.append({ conv: directConv(A, B), at: i, from, head: tpl.head, tail: tpl.tail }).offset);
    // Noise in another conversation, so offsets are not contiguous.
    const g = groupTemplate(C, G, JSON.stringify({ n: i }));
    s.log.append({ conv: groupConv(G), at: i, from: C, head: g.head, tail: g.tail });
  }
  return { s, offs };
}

function ask(s: MemoryStore, account: string, r: Omit<Request, 'act'>): F {
  const a = readHistory(s.log, s.positions, s.epoch, account, { cat: 'chat', act: 'history', ...r });
  if (!a.ok) return { error: a.code };
  return JSON.parse(a.frame) as F;
}

describe('actors: readHistory', () => {
  it('pages backwards from the newest to the first, each record once, more false only at the start', () => {
    const { s, offs } = setup(250);
    const seen: number[] = [];
    let before: number | undefined;
    const pages: number[] = [];
    for (;;) {
      const f = ask(s, A, { with: B, limit: 100, ...(before !== undefined ? { before } : {}) });
      const m = f.msg as F;
      expect(m.messages.length).to.be.at.most(100);
      pages.push(m.messages.length);
      seen.unshift(...m.messages.map((x: F) => x.seq as number));
      expect(m.first).to.equal(m.messages[0].seq);
      expect(m.last).to.equal(m.messages.at(-1).seq);
      if (!m.more) break;
      before = m.first as number;
    }
    expect(pages).to.deep.equal([100, 100, 50]);
    expect(seen).to.deep.equal(offs);
  });

  it('pages forwards from 0 to the newest, more false only at the end, then an empty page', () => {
    const { s, offs } = setup(250);
    const seen: number[] = [];
    let after = 0;
    const mores: boolean[] = [];
    for (;;) {
      const m = ask(s, B, { with: A, limit: 100, after }).msg as F;
      mores.push(m.more);
      seen.push(...m.messages.map((x: F) => x.seq as number));
      if (!m.more) break;
      after = m.last as number;
    }
    expect(mores).to.deep.equal([true, true, false]);
    expect(seen).to.deep.equal(offs);
    const end = ask(s, B, { with: A, after: offs.at(-1)! }).msg as F;
    expect(end).to.deep.include({ first: null, last: null, more: false, messages: [] });
  });

  it('exactly a page at the end says more: false', () => {
    const { s, offs } = setup(200);
    const p1 = ask(s, A, { with: B, limit: 100 }).msg as F;
    expect(p1.more).to.equal(true);
    const p2 = ask(s, A, { with: B, limit: 100, before: p1.first }).msg as F;
    expect(p2.more).to.equal(false);
    expect(p2.first).to.equal(offs[0]);
  });

  it('clamps the limit to 1..100 and defaults to 50', () => {
    const { s } = setup(150);
    expect((ask(s, A, { with: B, limit: 1000 }).msg as F).messages).to.have.length(HISTORY_MAX);
    expect((ask(s, A, { with: B, limit: 0 }).msg as F).messages).to.have.length(1);
    expect((ask(s, A, { with: B }).msg as F).messages).to.have.length(50);
    expect((ask(s, A, { with: B, limit: 7, after: 0 }).msg as F).messages).to.have.length(7);
  });

  it('shows both sides of a direct conversation as sent: `to` is the other account of each record', () => {
    const { s } = setup(6);
    for (const [reader, peer] of [[A, B], [B, A]] as const) {
      const m = ask(s, reader, { with: peer, after: 0 }).msg as F;
      expect(m.with).to.equal(peer);
      expect(m.epoch).to.equal(s.epoch);
      for (const x of m.messages as F[]) {
        expect(x.to).to.equal(x.from === A ? B : A);
        expect(x.type).to.equal('message');
      }
      expect((m.messages as F[]).map((x) => x.msg.i)).to.deep.equal([0, 1, 2, 3, 4, 5]);
    }
  });

  it('answers with the notice shape, the callback kept', () => {
    const { s } = setup(2);
    const f = ask(s, A, { with: B, callback: 'h1' });
    expect(f.type).to.equal('notice');
    expect(f.method).to.deep.equal({ act: 'history', cat: 'chat', callback: 'h1' });
    expect(Object.keys(f.msg).sort()).to.deep.equal(['epoch', 'first', 'last', 'messages', 'more', 'with']);
  });

  it('a group: members only; a member reads it, as the recipient', () => {
    const { s } = setup(5);
    expect(ask(s, A, { group: G }).error).to.equal(44501);
    s.positions.join(A, groupConv(G), 1);
    const m = ask(s, A, { group: G, after: 0 }).msg as F;
    expect(m.group).to.equal(G);
    expect((m.messages as F[]).map((x) => x.msg.n)).to.deep.equal([0, 1, 2, 3, 4]);
    expect((m.messages as F[]).every((x) => x.to === A && x.group === G)).to.equal(true);
    s.positions.leave(A, groupConv(G));
    expect(ask(s, A, { group: G }).error).to.equal(44501);
    // A group that does not exist reads like one the account is not in.
    expect(ask(s, A, { group: 'GDnosuchgroup' }).error).to.equal(44501);
  });

  it('refuses neither or both of with/group (44001), and before with after (44744)', () => {
    const { s } = setup(3);
    expect(ask(s, A, {}).error).to.equal(44001);
    expect(ask(s, A, { with: B, group: G }).error).to.equal(44001);
    expect(ask(s, A, { with: B, before: 5, after: 1 }).error).to.equal(44744);
  });

  it('large records: pages stop at the byte bound with more: true, and paging still gives each record once, both ways', () => {
    const s = new MemoryStore();
    const offs: number[] = [];
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 40; i++) {
      const tpl = directTemplate(A, JSON.stringify({ i, big }));
      offs.push(s.log.append({ conv: directConv(A, B), at: i, from: A, head: tpl.head, tail: tpl.tail }).offset);
    }
    const back: number[] = [];
    let before: number | undefined;
    let pages = 0;
    for (;;) {
      const m = ask(s, B, { with: A, limit: 100, ...(before !== undefined ? { before } : {}) }).msg as F;
      pages++;
      expect(m.messages.length).to.be.greaterThan(0);
      expect(JSON.stringify(m.messages).length).to.be.below(1.2 * 1024 * 1024);
      back.unshift(...(m.messages as F[]).map((x) => x.seq as number));
      expect(m.first).to.equal(m.messages[0].seq);
      if (!m.more) break;
      before = m.first as number;
      if (pages > 100) throw new Error('no end');
    }
    expect(pages).to.be.greaterThan(1);
    expect(back).to.deep.equal(offs);
    const fwd: number[] = [];
    let after = 0;
    for (;;) {
      const m = ask(s, B, { with: A, limit: 100, after }).msg as F;
      fwd.push(...(m.messages as F[]).map((x) => x.seq as number));
      expect(m.last).to.equal(m.messages.at(-1)?.seq ?? null);
      if (!m.more) break;
      after = m.last as number;
    }
    expect(fwd).to.deep.equal(offs);
  });
});
