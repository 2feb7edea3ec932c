/**
 * The blocking decisions without a server (src/actors/blocks.ts): the block list's acts and its
 * bound, which accounts of a group add are screened out (blocked silently, over the stranger bound
 * told), and the group actor honouring a screened call (src/actors/group.ts); the hourly quota's
 * windows and their stored form (src/supervisor/quotas.ts).
 */
import { expect } from 'chai';
import { addedBy, decideBlock, screenAdds, type AddChecks } from '../src/actors/blocks';
import { decideGroup } from '../src/actors/group';
import type { GroupCall, Post, Reply } from '../src/actors/envelopes';
import { newGroupRecord } from '../src/actors/group-state';
import { Code } from '../src/protocol/codes';
import type { Request } from '../src/protocol/frames';
import { HourlyQuota, STORED_KEYS } from '../src/supervisor/quotas';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const C = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';
const D = '5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy';
const GID = 'GDabcdefghij';

const req = (act: string, extra: Record<string, unknown> = {}): Request => ({ act, ...extra });

describe('actors: blocks', () => {
  it('block, unblock and blocked: idempotent, never oneself, bounded', () => {
    const d1 = decideBlock(A, [], req('block', { account: B }));
    expect(d1).to.deep.equal({ list: [B], msg: { account: B, blocked: true } });
    expect(decideBlock(A, [B], req('block', { account: B }))).to.deep.equal({ msg: { account: B, blocked: true } });
    expect(decideBlock(A, [B], req('unblock', { account: B }))).to.deep.equal({ list: [], msg: { account: B, blocked: false } });
    expect(decideBlock(A, [], req('unblock', { account: B }))).to.deep.equal({ msg: { account: B, blocked: false } });
    expect(decideBlock(A, [B, C], req('blocked'))).to.deep.equal({ msg: { blocked: [B, C] } });
    expect(decideBlock(A, [], req('block', { account: A }))).to.have.property('code', Code.UNEXPECTED_INPUT);
    expect(decideBlock(A, [B, C], req('block', { account: D }), 2)).to.deep.equal({ code: Code.UNEXPECTED_INPUT, error: 'the block list is full (2 accounts)' });
  });

  it('addedBy: create and members name the added, join another account (not oneself)', () => {
    expect(addedBy(req('create', { list: [B, C] }), A)).to.deep.equal([B, C]);
    expect(addedBy(req('members', { members: `${A}_${B}` }), A)).to.deep.equal([A, B]);
    expect(addedBy(req('join', { account: B }), A)).to.deep.equal([B]);
    expect(addedBy(req('join', { account: A }), A)).to.deep.equal([]);
    expect(addedBy(req('chat', { to: GID }), A)).to.deep.equal([]);
  });

  it('screenAdds: a blocker stays out silently; a stranger takes a stranger add, a contact none; past the bound told', () => {
    const taken: string[] = [];
    const left = new Map([[C, 1], [D, 0]]);
    const checks: AddChecks = {
      blocks: (blocker, who) => blocker === B && who === A,
      wroteTo: (account) => account === D,
      takeStrangerAdd: (account) => {
        taken.push(account);
        const n = left.get(account) ?? 0;
        left.set(account, n - 1);
        return n > 0;
      },
    };
    expect(screenAdds(A, [A, B, C, D, C], checks)).to.deep.equal({ blocked: [B], overQuota: [] });
    expect(taken).to.deep.equal([C], 'the blocker and the contact take nothing; the adder itself is not screened');
    expect(screenAdds(A, [C, D], checks)).to.deep.equal({ blocked: [], overQuota: [C] });
  });

  describe('the group actor honours a screened call', () => {
    const call = (request: Request, screened?: GroupCall['screened']): GroupCall => ({ t: 'group', id: GID, origin: { conn: 9, account: A, request }, now: 1000, ...(screened && { screened }) });
    const reply = (out: Array<Reply | Post>): Record<string, any> => JSON.parse(out.find((o): o is Reply => o.t === 'reply')!.frame) as Record<string, any>;

    it('create: screened accounts are not members and get no notice; only the over-bound ones are named to the creator', () => {
      const d = decideGroup(undefined, call(req('create', { list: [B, C, D] }), { blocked: [B], overQuota: [C] }), { maxGroupSize: 10 });
      const created = d.events[0] as { e: 'created'; record: { group: string[] } };
      expect(created.record.group).to.deep.equal([A, D]);
      expect((d.out.find((o) => o.t === 'post') as Post).to).to.deep.equal([A, D]);
      expect(reply(d.out).msg).to.deep.equal({ id: GID, skipped: [C] });
    });

    it('join: a blocker is refused 44501, an account past its stranger bound 44029', () => {
      const g = newGroupRecord(GID, [A], A, 1);
      expect(reply(decideGroup(g, call(req('join', { id: GID, account: B }), { blocked: [B], overQuota: [] }), { maxGroupSize: 10 }).out).code).to.equal(Code.NOT_PERMITTED);
      expect(reply(decideGroup(structuredClone(g), call(req('join', { id: GID, account: C }), { blocked: [], overQuota: [C] }), { maxGroupSize: 10 }).out).code).to.equal(Code.RATE_LIMITED);
    });

    it('members: screened newcomers stay out, screened members already in stay in', () => {
      const g = newGroupRecord(GID, [A, B], A, 1);
      const d = decideGroup(g, call(req('members', { id: GID, members: `${A}_${B}_${C}_${D}` }), { blocked: [B, C], overQuota: [D] }), { maxGroupSize: 10 });
      expect(d.events[0]).to.deep.include({ e: 'members', members: [A, B] });
      expect(reply(d.out).msg).to.deep.include({ added: [], skipped: [D] });
    });
  });

  it('HourlyQuota: stored windows are the open ones, at most STORED_KEYS (the fullest), restored with what is left of the hour', () => {
    const now = Date.now();
    const q = new HourlyQuota(3);
    for (let i = 0; i < STORED_KEYS + 10; i++) q.take(`k${i}`, now);
    q.take('k1', now);
    const snap = q.snapshot(now);
    expect(Object.keys(snap)).to.have.length(STORED_KEYS);
    expect(snap.k1).to.deep.equal([now, 2]);
    const r = new HourlyQuota(3);
    r.restore(snap, now + 1000);
    expect(r.take('k1', now + 1000)).to.equal(undefined);
    expect(r.take('k1', now + 1000)).to.equal(3600_000 - 1000);
    r.restore({ old: [now - 3600_000, 3], future: [now + 7200_000, 3], bad: 'x' }, now);
    expect(r.left('old', now) && r.left('future', now)).to.equal(true);
  });
});
