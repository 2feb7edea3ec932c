/**
 * Typing over real sockets: relayed to every device of the other side of a direct conversation and
 * to the online members of a group (never back to the sender, never to a non-member's request),
 * throttled to one per conversation per second per sender (the excess dropped and counted in
 * /status), never stored (nothing appended), and only between accounts that share a conversation.
 */
import { expect } from 'chai';
import { randomAddresses } from './support/accounts';
import { isNotice, sleep, type Client } from './support/client';
import { getStatus } from './support/server';
import { useServer } from './support/suite';

const isTyping = isNotice('chat', 'typing');

/** A direct message from `from` to `to`, once stored: they share a conversation from then on. */
async function talk(from: Client, to: string): Promise<void> {
  from.request({ cat: 'chat', act: 'chat', to, msg: 'hi', callback: `talk ${to}` });
  await from.next((f) => f.method?.callback === `talk ${to}`, 5000, 'the message stored');
}

describe('ephemeral: typing', function () {
  this.timeout(60_000);
  const ctx = useServer(['--workers', '2'], { status: true });
  const { clients, signedIn } = ctx;

  it('direct: every device of the other side gets it, the sender none; one per second per conversation, the rest dropped and counted', async () => {
    const [alice, bob, carol] = randomAddresses(3);
    const a = await signedIn(alice!, 'alice');
    const b1 = await signedIn(bob!, 'bob 1');
    const b2 = await signedIn(bob!, 'bob 2');
    const c = await signedIn(carol!, 'carol');
    await talk(a, bob!);
    await talk(a, carol!);
    const before = (await getStatus(ctx.srv)) as { delivery: { typing: { dropped: number; relayed: number } } };
    for (let i = 0; i < 5; i++) a.request({ cat: 'chat', act: 'typing', with: bob });
    const f = await b1.next(isTyping, 3000, 'typing');
    expect(f).to.deep.equal({ type: 'notice', msg: { account: alice, with: alice }, method: { cat: 'chat', act: 'typing' } });
    await b2.next(isTyping, 3000, 'typing on the second device');
    expect(await b1.none(isTyping, 400)).to.deep.equal([], 'throttled: one within the second');
    expect(await b2.none(isTyping, 0)).to.deep.equal([]);
    expect(await a.none(isTyping, 0)).to.deep.equal([], 'not back to the sender');
    expect(await c.none(isTyping, 0)).to.deep.equal([], 'nobody else');
    const after = (await getStatus(ctx.srv)) as typeof before;
    expect(after.delivery.typing.dropped - before.delivery.typing.dropped).to.equal(4);
    expect(after.delivery.typing.relayed - before.delivery.typing.relayed).to.equal(1);
    // Another conversation has its own budget; the same one passes again after a second.
    a.request({ cat: 'chat', act: 'typing', with: carol });
    await c.next(isTyping, 3000, 'typing to carol');
    await sleep(700);
    a.request({ cat: 'chat', act: 'typing', with: bob });
    await b1.next(isTyping, 3000, 'typing again after a second');
  });

  it('group: the online members but the sender get it; a non-member\'s is dropped', async () => {
    const [alice, bob, carol, dave, eve] = randomAddresses(5);
    const a = await signedIn(alice!, 'alice');
    const b = await signedIn(bob!, 'bob');
    const c = await signedIn(carol!, 'carol');
    const e = await signedIn(eve!, 'eve (not a member)');
    a.request({ cat: 'group', act: 'create', list: [bob, carol, dave], callback: 'g' });
    const gid = (await a.next(isNotice('group', 'create'), 5000)).msg.id as string;
    await b.next(isNotice('group', 'create'), 5000);
    await c.next(isNotice('group', 'create'), 5000);
    b.request({ cat: 'chat', act: 'typing', group: gid });
    expect((await a.next(isTyping, 3000)).msg).to.deep.equal({ account: bob, group: gid });
    expect((await c.next(isTyping, 3000)).msg).to.deep.equal({ account: bob, group: gid });
    expect(await b.none(isTyping, 300)).to.deep.equal([]);
    expect(await e.none(isTyping, 0)).to.deep.equal([]);
    e.request({ cat: 'chat', act: 'typing', group: gid });
    expect(await a.none(isTyping, 400)).to.deep.equal([], 'a non-member\'s typing is dropped');
    // A member that joins later gets it (the member list follows the group's changes).
    a.request({ cat: 'group', act: 'join', id: gid, account: eve, callback: 'j' });
    await e.next(isNotice('group', 'join'), 5000);
    await sleep(1100);
    b.request({ cat: 'chat', act: 'typing', group: gid });
    expect((await e.next(isTyping, 3000)).msg).to.deep.equal({ account: bob, group: gid });
  });

  it('is never stored: typing appends nothing to any log and leaves no state', async () => {
    const [typist, reader] = randomAddresses(2);
    const t = await signedIn(typist!, 'typist');
    const r = await signedIn(reader!, 'reader');
    await talk(r, typist!);
    type Figures = { delivery: { appended: number } };
    const before = (await getStatus<Figures>(ctx.srv)).delivery.appended;
    for (let i = 0; i < 3; i++) {
      t.request({ cat: 'chat', act: 'typing', with: reader });
      await r.next(isTyping, 3000);
      await sleep(1050);
    }
    expect((await getStatus<Figures>(ctx.srv)).delivery.appended).to.equal(before);
  });

  it('from an account with no shared conversation (no direct message, no common group) is not relayed, and counted as refused', async () => {
    const [stranger, target] = randomAddresses(2);
    const s = await signedIn(stranger!, 'stranger');
    const t = await signedIn(target!, 'target');
    const before = (await getStatus(ctx.srv)) as { delivery: { typing: { refused: number } } };
    s.request({ cat: 'chat', act: 'typing', with: target });
    expect(await t.none(isTyping, 500)).to.deep.equal([], 'a stranger\'s typing is dropped');
    const after = (await getStatus(ctx.srv)) as typeof before;
    expect(after.delivery.typing.refused - before.delivery.typing.refused).to.equal(1);
    // Once they share a conversation, it is relayed.
    await talk(t, stranger!);
    await sleep(1050);
    s.request({ cat: 'chat', act: 'typing', with: target });
    await t.next(isTyping, 3000, 'typing once they talked');
  });
});
