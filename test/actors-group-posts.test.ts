/**
 * Where the group actor's posts go (src/actors/group.ts), without a server: changes that members
 * stay for go once into the group's log (`g:<GID>`), to the members after the change; news that
 * puts an account out of the group (or about it alone: being added at create) goes to each such
 * account's own log (`conv: 'own'`); the requester's own answer is a reply, never a post.
 */
import { expect } from 'chai';
import { decideGroup } from '../src/actors/group';
import type { GroupCall, Post, Reply } from '../src/actors/envelopes';
import { newGroupRecord, type GroupRecord } from '../src/actors/group-state';
import type { Request } from '../src/protocol/frames';
import { renderFrame } from '../src/protocol/frames';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const C = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';
const D = '5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy';
const GID = 'GDabcdefghij';
const limits = { maxGroupSize: 100 };

const call = (account: string, request: Request, conn = 9): GroupCall => ({ t: 'group', id: GID, origin: { conn, account, request }, now: 1000 });
const group = (members = [A, B, C]): GroupRecord => newGroupRecord(GID, members, A, 1);
const posts = (out: Array<Reply | Post>): Post[] => out.filter((o): o is Post => o.t === 'post');
const replies = (out: Array<Reply | Post>): Reply[] => out.filter((o): o is Reply => o.t === 'reply');
const frameOf = (p: Post, to: string): Record<string, any> => JSON.parse(renderFrame(p.tpl, to, 1)) as Record<string, any>;

describe('actors: decideGroup posts', () => {
  it('create: a reply to the requester and one post to the own logs of every member (requester included), except its connection', () => {
    const d = decideGroup(undefined, call(A, { cat: 'group', act: 'create', list: [B, C, B] }), limits);
    expect(replies(d.out)).to.have.length(1);
    expect(replies(d.out)[0]!.conn).to.equal(9);
    const p = posts(d.out);
    expect(p).to.have.length(1);
    expect(p[0]!.conv).to.equal('own');
    expect(p[0]!.to).to.deep.equal([A, B, C]);
    expect(p[0]!.from).to.equal(null);
    expect(p[0]!.except).to.equal(9);
    expect(frameOf(p[0]!, B)).to.deep.include({ type: 'notice', msg: { id: GID }, to: B, method: { act: 'create', cat: 'group' } });
  });

  it('join: one post to the group log for the members after the change, the joiner included', () => {
    const d = decideGroup(group(), call(A, { cat: 'group', act: 'join', id: GID, account: D }), limits);
    const p = posts(d.out);
    expect(p).to.have.length(1);
    expect(p[0]!.conv).to.equal(`g:${GID}`);
    expect(p[0]!.to).to.deep.equal([A, B, C, D]);
    expect(frameOf(p[0]!, D).msg).to.deep.equal({ id: GID, from: A, account: D });
    expect(d.events).to.deep.equal([{ e: 'joined', account: D, at: 1000 }]);
  });

  it('members: the group log for the new list, the own logs of the removed', () => {
    const d = decideGroup(group(), call(A, { cat: 'group', act: 'members', id: GID, members: `${B}_${D}` }), limits);
    const p = posts(d.out);
    expect(p.map((x) => x.conv)).to.deep.equal([`g:${GID}`, 'own']);
    expect(p[0]!.to).to.deep.equal([A, B, D]);
    expect(p[1]!.to).to.deep.equal([C]);
    expect(frameOf(p[1]!, C).msg).to.deep.equal({ id: GID, from: A, added: [D], removed: [C] });
  });

  it('leave: the rest read it in the group log, the leaver in its own log', () => {
    const d = decideGroup(group(), call(B, { cat: 'group', act: 'leave', id: GID, account: B }), limits);
    const p = posts(d.out);
    expect(p.map((x) => [x.conv, x.to])).to.deep.equal([[`g:${GID}`, [A, C]], ['own', [B]]]);
    expect(p.every((x) => x.except === 9)).to.equal(true);
    expect(frameOf(p[0]!, A).msg).to.deep.equal({ from: B, id: GID, manager: A });
  });

  it('leave by the manager hands the group on; the last member leaving posts nothing', () => {
    const d = decideGroup(group(), call(A, { cat: 'group', act: 'leave', id: GID, account: A }), limits);
    expect(frameOf(posts(d.out)[0]!, B).msg.manager).to.equal(B);
    const last = decideGroup(group([A]), call(A, { cat: 'group', act: 'leave', id: GID, account: A }), limits);
    expect(posts(last.out)).to.deep.equal([]);
    expect(last.events.map((e) => e.e)).to.deep.equal(['destroyed']);
  });

  it('deport: the rest in the group log, the deported in its own log', () => {
    const d = decideGroup(group(), call(A, { cat: 'group', act: 'deport', id: GID, account: C }), limits);
    const p = posts(d.out);
    expect(p.map((x) => [x.conv, x.to])).to.deep.equal([[`g:${GID}`, [A, B]], ['own', [C]]]);
    expect(frameOf(p[1]!, C)).to.deep.include({ msg: { id: GID, account: C, from: A }, method: { act: 'deport', cat: 'group' } });
  });

  it('destory: nothing in the group log (it goes), every member in its own log', () => {
    const d = decideGroup(group(), call(A, { cat: 'group', act: 'destory', id: GID }), limits);
    const p = posts(d.out);
    expect(p).to.have.length(1);
    expect(p[0]!.conv).to.equal('own');
    expect(p[0]!.to).to.deep.equal([A, B, C]);
    expect(d.events.map((e) => e.e)).to.deep.equal(['destroyed']);
  });

  it('chat: one record in the group log for the others, from the sender, with mid and an answer', () => {
    const d = decideGroup(group(), call(B, { cat: 'group', act: 'chat', to: GID, msg: 'hi', mid: 'x1' }), limits);
    expect(replies(d.out)).to.deep.equal([]);
    const [p] = posts(d.out) as [Post];
    expect(p.conv).to.equal(`g:${GID}`);
    expect(p.from).to.equal(B);
    expect(p.to).to.deep.equal([A, C]);
    expect(p.mid).to.equal('x1');
    expect(JSON.parse(p.ackTo!.frame).msg).to.deep.equal({ id: GID, mid: 'x1' });
    expect(frameOf(p, A)).to.deep.include({ msg: 'hi', from: B, group: GID, to: A, type: 'message' });
  });

  it('refusals post nothing: a non-member chatting, a member deporting', () => {
    for (const [acc, r] of [
      [D, { cat: 'group', act: 'chat', to: GID, msg: 'x' }],
      [B, { cat: 'group', act: 'deport', id: GID, account: C }],
    ] as Array<[string, Request]>) {
      const d = decideGroup(group(), call(acc, r), limits);
      expect(posts(d.out), r.act).to.deep.equal([]);
      expect(d.events).to.deep.equal([]);
      expect(JSON.parse(replies(d.out)[0]!.frame).code).to.equal(44501);
    }
  });
});
