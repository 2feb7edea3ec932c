/**
 * The direct-message actor's decision (src/actors/direct.ts), without a server: one record in the
 * conversation of the sorted pair, the receiver as recipient, and the sender's answer only when it
 * asked for one (a `mid` or a `callback`).
 */
import { expect } from 'chai';
import { decideDirect } from '../src/actors/direct';
import { renderFrame } from '../src/protocol/frames';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';

describe('actors: decideDirect', () => {
  it('names the conversation by the sorted pair, whichever account sends', () => {
    const [lo, hi] = [A, B].sort() as [string, string];
    const ab = decideDirect(A, 1, { cat: 'chat', act: 'chat', to: B, msg: 'x' });
    const ba = decideDirect(B, 2, { cat: 'chat', act: 'chat', to: A, msg: 'y' });
    expect(ab.conv).to.equal(`d:${lo}:${hi}`);
    expect(ba.conv).to.equal(ab.conv);
    expect(ab.t).to.equal('post');
    expect(ab.from).to.equal(A);
    expect(ab.to).to.deep.equal([B]);
    expect(ba.from).to.equal(B);
    expect(ba.to).to.deep.equal([A]);
  });

  it('renders to the plain chat frame the receiver gets', () => {
    const p = decideDirect(A, 1, { cat: 'chat', act: 'chat', to: B, msg: { text: 'hi', n: [1, 2] } });
    const f = JSON.parse(renderFrame(p.tpl, B, 42)) as Record<string, unknown>;
    expect(f).to.deep.equal({ msg: { text: 'hi', n: [1, 2] }, from: A, to: B, method: { cat: 'chat', act: 'chat' }, type: 'message', seq: 42 });
  });

  it('keeps the mid and answers the sender on its connection', () => {
    const p = decideDirect(A, 7, { cat: 'chat', act: 'chat', to: B, msg: 'x', mid: 'm-1' });
    expect(p.mid).to.equal('m-1');
    expect(p.ackTo?.conn).to.equal(7);
    expect(JSON.parse(p.ackTo!.frame)).to.deep.equal({ type: 'notice', msg: { to: B, mid: 'm-1' }, method: { cat: 'chat', act: 'chat' } });
  });

  it('answers a callback without a mid with mid null, and carries the callback', () => {
    const p = decideDirect(A, 3, { cat: 'chat', act: 'to', to: B, msg: 'x', callback: 'cb' });
    expect(p.mid).to.equal(undefined);
    const ack = JSON.parse(p.ackTo!.frame) as Record<string, any>;
    expect(ack.msg).to.deep.equal({ to: B, mid: null });
    expect(ack.method).to.deep.include({ act: 'to', callback: 'cb' });
  });

  it('asks for no answer without mid or callback', () => {
    const p = decideDirect(A, 3, { cat: 'chat', act: 'chat', to: B, msg: 'x' });
    expect(p.ackTo).to.equal(undefined);
    expect(p).to.not.have.property('mid');
    expect(p.except).to.equal(undefined);
  });

  it('a non-string mid is not kept for deduplication but still gets an answer', () => {
    const p = decideDirect(A, 3, { cat: 'chat', act: 'chat', to: B, msg: 'x', mid: 5 as unknown as string });
    expect(p).to.not.have.property('mid');
    expect(p.ackTo).to.not.equal(undefined);
  });
});
