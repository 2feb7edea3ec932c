/**
 * Blocking on a real server: once B blocks A, A's direct messages are acknowledged as usual but
 * never reach B (nor its log), A's creates and joins leave B out, A's typing and presence
 * subscriptions to B go nowhere; B reads its list with `blocked`, and `unblock` lets A through again.
 */
import { expect } from 'chai';
import { randomAddresses } from './support/accounts';
import { isNotice, sleep, withCallback } from './support/client';
import { useServer } from './support/suite';

describe('hardening: blocks', function () {
  this.timeout(30_000);
  const { signedIn } = useServer(['--workers', '1']);

  it('a blocked account\'s messages, adds, typing and presence requests no longer reach the blocker', async () => {
    const [alice, bob] = randomAddresses(2);
    const a = await signedIn(alice!, 'alice');
    const b = await signedIn(bob!, 'bob');
    // They talked: typing and presence would reach bob.
    b.request({ cat: 'chat', act: 'chat', to: alice, msg: 'hello', callback: 'h' });
    await b.next(withCallback('h'));
    await a.next((f) => f.type === 'message');
    b.request({ cat: 'chat', act: 'block', account: alice, callback: 'blk' });
    expect((await b.next(withCallback('blk'))).msg).to.deep.equal({ account: alice, blocked: true });
    b.request({ cat: 'chat', act: 'blocked', callback: 'l' });
    expect((await b.next(withCallback('l'))).msg).to.deep.equal({ blocked: [alice] });
    expect((await b.expectError({ cat: 'chat', act: 'block', account: bob })).code).to.equal(44744);

    a.request({ cat: 'chat', act: 'chat', to: bob, msg: 'spam', mid: 'm1', callback: 'm1' });
    expect((await a.next(withCallback('m1'))).msg).to.deep.equal({ to: bob, mid: 'm1' }, 'acknowledged as usual');
    a.request({ cat: 'group', act: 'create', list: [bob], callback: 'g' });
    const gid = (await a.next(withCallback('g'))).msg.id as string;
    a.request({ cat: 'group', act: 'detail', id: gid, callback: 'd' });
    expect((await a.next(withCallback('d'))).msg.group).to.deep.equal([alice]);
    a.request({ cat: 'group', act: 'join', id: gid, account: bob, callback: 'j' });
    expect((await a.next(withCallback('j'))).code).to.equal(44501);
    a.request({ cat: 'chat', act: 'typing', with: bob });
    a.request({ cat: 'chat', act: 'presence', subscribe: [bob], callback: 'p' });
    expect((await a.next(withCallback('p'))).msg).to.deep.include({ presence: [], refused: [bob] });
    expect(await b.none((f) => f.type === 'message' || isNotice('group', 'create')(f) || isNotice('chat', 'typing')(f), 500)).to.deep.equal([]);

    b.request({ cat: 'chat', act: 'unblock', account: alice, callback: 'u' });
    expect((await b.next(withCallback('u'))).msg).to.deep.equal({ account: alice, blocked: false });
    await sleep(1050);
    a.request({ cat: 'chat', act: 'chat', to: bob, msg: 'again', callback: 'm2' });
    expect((await b.next((f) => f.type === 'message')).msg).to.equal('again');
    a.request({ cat: 'chat', act: 'typing', with: bob });
    await b.next(isNotice('chat', 'typing'), 3000, 'typing after unblock');
  });
});
