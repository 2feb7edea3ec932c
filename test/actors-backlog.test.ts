/**
 * The sign-in backlog (src/actors/backlog.ts) over a MemoryStore, without a server: conversations
 * merged by offset, a group bounded to its newest records with a `limited` notice before them,
 * `after` and a membership's `since` respected, the account's own messages skipped, and the merge
 * still whole and ordered when each conversation keeps only a tiny page.
 */
import { expect } from 'chai';
import { Backlog, limitedNotice, type BacklogItem } from '../src/actors/backlog';
import { directTemplate, groupTemplate } from '../src/protocol/frames';
import { MemoryStore } from '../src/store/memory/memory-store';
import { accountConv, directConv, groupConv, type Membership } from '../src/store/ports';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const C = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';
const G = 'GDgroupAAAAA';

type F = Record<string, any>;

function direct(store: MemoryStore, from: string, to: string, i: number): number {
  const tpl = directTemplate(from, JSON.stringify({ i }));
  return store.log.append({ conv: directConv(from, to), at: Date.now(), from, head: tpl.head, tail: tpl.tail }).offset;
}

function groupMsg(store: MemoryStore, gid: string, from: string, i: number): number {
  const tpl = groupTemplate(from, gid, JSON.stringify({ i }));
  return store.log.append({ conv: groupConv(gid), at: Date.now(), from, head: tpl.head, tail: tpl.tail }).offset;
}

/** Everything the backlog gives, drained `n` at a time, parsed; checks `last` rises. */
function drain(b: Backlog, n = 32): F[] {
  const out: F[] = [];
  let prev = 0;
  for (let turns = 0; turns < 100_000; turns++) {
    const { frames, last } = b.next(n);
    if (last === 0) { expect(frames).to.deep.equal([]); return out; }
    expect(last).to.be.greaterThan(prev);
    prev = last;
    expect(frames.length).to.be.at.most(n + 1);
    out.push(...frames.map((f) => JSON.parse(f) as F));
  }
  throw new Error('backlog never ended');
}

const range = (store: MemoryStore, account: string, after = 0, groupBacklog = 200) =>
  ({ account, after, upTo: store.stats().lastOffset, groupBacklog, epoch: store.epoch });

describe('actors: Backlog', () => {
  it('merges direct, group and own logs by offset, each frame to the account with seq = offset', () => {
    const s = new MemoryStore();
    const expected: number[] = [];
    for (let i = 0; i < 30; i++) {
      expected.push(i % 3 === 0 ? direct(s, A, B, i) : i % 3 === 1 ? groupMsg(s, G, C, i) : direct(s, C, B, i));
    }
    const mem: Membership[] = [
      { conv: accountConv(B), since: 0 }, { conv: directConv(A, B), since: 0 }, { conv: directConv(B, C), since: 0 }, { conv: groupConv(G), since: 0 },
    ];
    const frames = drain(new Backlog(s.log, range(s, B), mem), 7);
    expect(frames.map((f) => f.seq)).to.deep.equal(expected);
    expect(frames.map((f) => f.msg.i)).to.deep.equal([...Array(30).keys()]);
    expect(frames.every((f) => f.to === B)).to.equal(true);
    expect(frames.filter((f) => f.group === G)).to.have.length(10);
  });

  it('bounds a group to its newest records, after a limited notice naming the oldest delivered', () => {
    const s = new MemoryStore();
    const d: number[] = [];
    const g: number[] = [];
    for (let i = 0; i < 50; i++) { g.push(groupMsg(s, G, C, i)); if (i % 10 === 0) d.push(direct(s, A, B, 100 + i)); }
    const mem: Membership[] = [{ conv: directConv(A, B), since: 0 }, { conv: groupConv(G), since: 0 }];
    const frames = drain(new Backlog(s.log, range(s, B, 0, 20), mem));
    const notices = frames.filter((f) => f.type === 'notice');
    expect(notices).to.have.length(1);
    const newest = g.slice(-20);
    expect(notices[0]).to.deep.equal(JSON.parse(limitedNotice(B, G, newest[0]!, s.epoch)));
    expect(notices[0]).to.deep.equal({ type: 'notice', msg: { group: G, limited: true, before: newest[0], epoch: s.epoch }, to: B, method: { act: 'limited', cat: 'group' } });
    // Every direct message, the group's newest 20, in offset order; the notice right before the group's first.
    const seqs = frames.filter((f) => f.type !== 'notice').map((f) => f.seq as number);
    expect(seqs).to.deep.equal([...d, ...newest].sort((a, b) => a - b));
    const at = frames.indexOf(notices[0]!);
    expect(frames[at + 1]!.seq).to.equal(newest[0]);
  });

  it('gives no notice when the group has exactly the bound, or fewer', () => {
    for (const n of [19, 20]) {
      const s = new MemoryStore();
      for (let i = 0; i < n; i++) groupMsg(s, G, C, i);
      const frames = drain(new Backlog(s.log, range(s, B, 0, 20), [{ conv: groupConv(G), since: 0 }]));
      expect(frames.map((f) => f.type), `n=${n}`).to.deep.equal(Array(n).fill('message'));
    }
  });

  it('counts the bound from the account\'s position: news beyond `after` within the bound give no notice', () => {
    const s = new MemoryStore();
    const g: number[] = [];
    for (let i = 0; i < 100; i++) g.push(groupMsg(s, G, C, i));
    const frames = drain(new Backlog(s.log, range(s, B, g[89]!, 20), [{ conv: groupConv(G), since: 0 }]));
    expect(frames.map((f) => f.seq)).to.deep.equal(g.slice(90));
  });

  it('respects `since` (joined later) and `after` (delivered before)', () => {
    const s = new MemoryStore();
    const g: number[] = [];
    const d: number[] = [];
    for (let i = 0; i < 20; i++) { g.push(groupMsg(s, G, C, i)); d.push(direct(s, A, B, i)); }
    const mem: Membership[] = [{ conv: directConv(A, B), since: 0 }, { conv: groupConv(G), since: g[15]! }];
    const frames = drain(new Backlog(s.log, range(s, B, d[4]!), mem));
    const want = [...d.slice(5), ...g.slice(15)].sort((a, b) => a - b);
    expect(frames.map((f) => f.seq)).to.deep.equal(want);
    // A group whose newest record predates `since` gives nothing at all.
    const none = drain(new Backlog(s.log, range(s, B), [{ conv: groupConv(G), since: s.stats().lastOffset + 1 }]));
    expect(none).to.deep.equal([]);
  });

  it('reads nothing past `upTo` (later records come live)', () => {
    const s = new MemoryStore();
    const d = [direct(s, A, B, 0), direct(s, A, B, 1)];
    const r = range(s, B);
    direct(s, A, B, 2);
    groupMsg(s, G, C, 3);
    const frames = drain(new Backlog(s.log, r, [{ conv: directConv(A, B), since: 0 }, { conv: groupConv(G), since: 0 }]));
    expect(frames.map((f) => f.seq)).to.deep.equal(d);
  });

  it('skips what the account sent itself, in direct and group logs', () => {
    const s = new MemoryStore();
    const theirs: number[] = [];
    for (let i = 0; i < 10; i++) {
      direct(s, B, A, i);
      groupMsg(s, G, B, i);
      theirs.push(direct(s, A, B, i), groupMsg(s, G, C, i));
    }
    const frames = drain(new Backlog(s.log, range(s, B), [{ conv: directConv(A, B), since: 0 }, { conv: groupConv(G), since: 0 }]), 3);
    expect(frames.map((f) => f.seq)).to.deep.equal(theirs);
    expect(frames.some((f) => f.from === B)).to.equal(false);
  });

  it('stays whole and ordered across 2,000 conversations with tiny pages', () => {
    const s = new MemoryStore();
    const mem: Membership[] = [];
    const want: number[] = [];
    const gids = Array.from({ length: 2000 }, (_, i) => `GDg${String(i).padStart(6, '0')}`);
    for (const gid of gids) mem.push({ conv: groupConv(gid), since: 0 });
    mem.push({ conv: directConv(A, B), since: 0 });
    // Round after round across all conversations, so every page runs dry many times.
    for (let round = 0; round < 3; round++) {
      for (const gid of gids) want.push(groupMsg(s, gid, C, round));
      want.push(direct(s, A, B, round));
    }
    const frames = drain(new Backlog(s.log, range(s, B, 0, 200), mem), 50);
    expect(frames.length).to.equal(want.length);
    expect(frames.map((f) => f.seq)).to.deep.equal(want);
  });

  it('a conversation with many records and many others with few: nothing lost when pages refill', () => {
    const s = new MemoryStore();
    const mem: Membership[] = [{ conv: directConv(A, B), since: 0 }];
    const want: number[] = [];
    const gids = Array.from({ length: 300 }, (_, i) => `GDh${String(i).padStart(6, '0')}`);
    for (const gid of gids) mem.push({ conv: groupConv(gid), since: 0 });
    for (let i = 0; i < 1000; i++) {
      want.push(direct(s, A, B, i));
      if (i % 3 === 0) want.push(groupMsg(s, gids[i % gids.length]!, C, i));
    }
    const frames = drain(new Backlog(s.log, range(s, B), mem), 32);
    expect(frames.map((f) => f.seq)).to.deep.equal(want);
  });

  it('read in pages, each resumed afresh from the cursors of the one before, gives the same items as one read', () => {
    const s = new MemoryStore();
    const mem: Membership[] = [{ conv: directConv(A, B), since: 0 }, { conv: groupConv(G), since: 0 }, { conv: groupConv('GDother'), since: 0 }];
    for (let i = 0; i < 120; i++) {
      direct(s, i % 4 === 0 ? B : A, B, i);
      groupMsg(s, G, i < 90 ? B : C, i);
      if (i % 5 === 0) groupMsg(s, 'GDother', C, i);
    }
    const r = range(s, B, 0, 40);
    const all: BacklogItem[] = [];
    const whole = new Backlog(s.log, r, mem);
    while (whole.take(all) !== 0) { /* read on */ }
    for (const size of [1, 7, 50]) {
      const paged: BacklogItem[] = [];
      let b = new Backlog(s.log, r, mem);
      for (let pages = 0; pages < 1000; pages++) {
        for (let n = 0; n < size && b.take(paged) !== 0; n++) { /* one record */ }
        const cursors = b.cursors();
        if (cursors.length === 0) break;
        b = Backlog.resume(s.log, r, JSON.parse(JSON.stringify(cursors)));
      }
      expect(paged, `pages of ${size}`).to.deep.equal(all);
    }
    // The group's notice (its window starts among B's own records) is there once, with the offset of the record after it.
    const notices = all.filter((it) => it.frame.includes('"limited"'));
    expect(notices).to.have.length(1);
    expect(all[all.indexOf(notices[0]!) + 1]!.offset).to.equal(notices[0]!.offset);
    expect(all.map((it) => it.offset)).to.deep.equal(all.map((it) => it.offset).sort((x, y) => x - y));
  });

  // `before` is the first frame delivered, so paging back from it also covers the account's own
  // record at the start of the window (which sign-in does not deliver back to it).
  it('the limited notice\'s `before` is the oldest record delivered, also when the window starts with the account\'s own message', () => {
    const s = new MemoryStore();
    const c: number[] = [];
    for (let i = 0; i < 10; i++) c.push(groupMsg(s, G, C, i));
    const own = groupMsg(s, G, B, 10);
    for (let i = 11; i < 15; i++) c.push(groupMsg(s, G, C, i));
    const frames = drain(new Backlog(s.log, range(s, B, 0, 5), [{ conv: groupConv(G), since: 0 }]));
    const notice = frames[0]!;
    expect(notice.msg.limited).to.equal(true);
    const delivered = frames.slice(1).map((f) => f.seq as number);
    expect(delivered).to.deep.equal(c.slice(-4));
    // Sign-in plus history paged back from `before` must together cover every record of the group.
    const older = s.log.read({ conv: groupConv(G), before: notice.msg.before, limit: 100, direction: 'backward' }).map((e) => e.offset);
    expect([...older, ...delivered]).to.include(own);
    expect(notice.msg.before).to.equal(delivered[0]);
  });
});
