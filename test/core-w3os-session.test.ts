/**
 * A W3OS client's session, played frame by frame in open mode as deployed clients send it
 * (../shared/reference/w3os-wire.md): connect, init, active without cat, Welcome, create a group
 * with a callback, detail, chat in the group, a direct `to` message, update the nick, leave.
 * Each answer is the very next frame the client receives, with the fields the reference lists.
 */
import { expect } from 'chai';
import { accountsReady, newAccount, type Account } from './support/accounts';
import { Client, type Frame } from './support/client';
import { startServer, type ServerHandle } from './support/server';

/** Keys this service may add to the reference frames (legacy clients ignore them). */
const EXTRAS = ['seq', 'to'];

/** `f` has exactly the reference keys, plus at most the allowed extras. */
function expectKeys(f: Frame, reference: string[], extras: string[] = EXTRAS): void {
  const keys = Object.keys(f);
  for (const k of reference) expect(keys, `missing "${k}" in ${JSON.stringify(f)}`).to.include(k);
  const unexpected = keys.filter((k) => !reference.includes(k) && !extras.includes(k));
  expect(unexpected, `unexpected keys in ${JSON.stringify(f)}`).to.deep.equal([]);
}

describe('core: a W3OS client session, frame by frame (open mode)', function () {
  let srv: ServerHandle;
  let alice: Account;
  let bob: Account;
  let a: Client;
  let b: Client;
  let gid: string;
  /** The very next frame, whatever it is: nothing may come before the expected answer. */
  const nextFrame = (c: Client, what: string): Promise<Frame> => c.next(() => true, 5000, what);

  before(async () => {
    await accountsReady();
    srv = await startServer(['--auth', 'open']);
    alice = newAccount();
    bob = newAccount();
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await srv?.stop();
  });

  it('1. connect: the server speaks first with {"spam","act":"init"}', async () => {
    a = await Client.connect(srv.url, { name: 'alice' });
    b = await Client.connect(srv.url, { name: 'bob' });
    for (const c of [a, b]) {
      expect(c.init).to.deep.equal({ spam: c.spam, act: 'init' });
      expect(c.spam).to.be.a('string').and.not.empty;
    }
  });

  it('2. active without cat: Welcome {"type":"notice","msg":"Welcome","method":{"cat":"chat","act":"active"}}', async () => {
    a.send({ act: 'active', acc: alice.address, spam: a.spam });
    expect(await nextFrame(a, 'Welcome')).to.deep.equal({ type: 'notice', msg: 'Welcome', method: { cat: 'chat', act: 'active' } });
    b.send({ act: 'active', acc: bob.address, spam: b.spam });
    expect(await nextFrame(b, 'Welcome')).to.deep.equal({ type: 'notice', msg: 'Welcome', method: { cat: 'chat', act: 'active' } });
  });

  it('3. group create with callback: the requester gets {msg:{id}} with method.callback; the member a create notice', async () => {
    a.send({ cat: 'group', act: 'create', list: [bob.address], spam: a.spam, callback: 'w3os-cb-create' });
    const mine = await nextFrame(a, 'create answer');
    expect(mine).to.deep.equal({ type: 'notice', msg: { id: mine.msg?.id }, method: { act: 'create', cat: 'group', callback: 'w3os-cb-create' } });
    gid = mine.msg.id as string;
    expect(gid).to.match(/^GD[A-Za-z]{10}$/);
    const theirs = await nextFrame(b, 'create notice');
    expectKeys(theirs, ['type', 'msg', 'method']);
    expect(theirs.type).to.equal('notice');
    expect(theirs.msg).to.deep.equal({ id: gid });
    expect(theirs.method).to.deep.equal({ act: 'create', cat: 'group' });
  });

  it('4. detail: a notice act "detail" whose msg is the record', async () => {
    a.send({ cat: 'group', act: 'detail', id: gid, spam: a.spam, callback: 'w3os-cb-detail' });
    const f = await nextFrame(a, 'detail answer');
    expectKeys(f, ['type', 'msg', 'method'], []);
    expect(f.type).to.equal('notice');
    expect(f.method).to.deep.equal({ act: 'detail', cat: 'group', callback: 'w3os-cb-detail' });
    const rec = f.msg as Frame;
    expectKeys(rec, ['id', 'group', 'status', 'create', 'update', 'notice', 'manager', 'founder', 'announce', 'permit', 'block', 'nick'], []);
    expect(rec).to.deep.include({
      id: gid, group: [alice.address, bob.address], status: 1, notice: [], manager: alice.address, founder: alice.address,
      announce: { content: '', expired: 0 }, permit: { free: true, announce: false }, block: [], nick: '',
    });
    expect(rec.create).to.be.a('number');
    expect(rec.update).to.be.a('number');
  });

  it('5. chat in the group: the other member gets {msg, from, group, to, method:{act:"message",cat:"group"}, cat:"group", type:"message"}', async () => {
    a.send({ cat: 'group', act: 'chat', to: gid, msg: 'hello group', spam: a.spam });
    const f = await nextFrame(b, 'group message');
    expectKeys(f, ['msg', 'from', 'group', 'to', 'method', 'cat', 'type'], ['seq']);
    expect(f).to.deep.include({ msg: 'hello group', from: alice.address, group: gid, to: bob.address, cat: 'group', type: 'message' });
    expect(f.method).to.deep.equal({ act: 'message', cat: 'group' });
    // The sender has nothing to read (no callback given).
    expect(await a.none(() => true, 200)).to.deep.equal([]);
  });

  it('6. direct `to` message: the receiver gets {msg, from, to, method:{cat:"chat",act:"chat"}, type:"message"}', async () => {
    b.send({ cat: 'chat', act: 'to', to: alice.address, msg: { text: 'hi alice' }, spam: b.spam });
    const f = await nextFrame(a, 'direct message');
    expectKeys(f, ['msg', 'from', 'to', 'method', 'type'], ['seq']);
    expect(f).to.deep.include({ msg: { text: 'hi alice' }, from: bob.address, to: alice.address, type: 'message' });
    expect(f.method).to.deep.equal({ cat: 'chat', act: 'chat' });
  });

  it('7. update nick: every member gets notice act "update" with msg {key, value, id, from}', async () => {
    b.send({ cat: 'group', act: 'update', id: gid, key: 'nick', val: 'W3OS friends', spam: b.spam, callback: 'w3os-cb-nick' });
    const mine = await nextFrame(b, 'update answer');
    expectKeys(mine, ['type', 'msg', 'method'], []);
    expect(mine.method).to.deep.equal({ act: 'update', cat: 'group', callback: 'w3os-cb-nick' });
    expect(mine.msg).to.deep.equal({ key: 'nick', value: 'W3OS friends', id: gid, from: bob.address });
    const theirs = await nextFrame(a, 'update notice');
    expectKeys(theirs, ['type', 'msg', 'method']);
    expect(theirs.type).to.equal('notice');
    expect(theirs.method).to.deep.equal({ act: 'update', cat: 'group' });
    expect(theirs.msg).to.deep.equal({ key: 'nick', value: 'W3OS friends', id: gid, from: bob.address });
  });

  it('8. leave: every member, the leaver too, gets notice act "leave" with msg {from, id}; then the leaver is out', async () => {
    b.send({ cat: 'group', act: 'leave', id: gid, account: bob.address, spam: b.spam });
    const mine = await nextFrame(b, 'leave notice (leaver)');
    const theirs = await nextFrame(a, 'leave notice (member)');
    for (const f of [mine, theirs]) {
      expect(f.type).to.equal('notice');
      expect(f.method).to.deep.equal({ act: 'leave', cat: 'group' });
      expect(f.msg).to.deep.include({ from: bob.address, id: gid });
      expectKeys(f, ['type', 'msg', 'method']);
    }
    a.send({ cat: 'group', act: 'detail', id: gid, spam: a.spam, callback: 'after-leave' });
    const d = await nextFrame(a, 'detail after leave');
    expect(d.msg.group).to.deep.equal([alice.address]);
    expect(d.msg.nick).to.equal('W3OS friends');
  });

  it('9. the errors a W3OS client reads: request.callback comes back', async () => {
    b.send({ cat: 'group', act: 'detail', id: gid, spam: b.spam, callback: 'w3os-cb-denied' });
    const f = await nextFrame(b, 'error');
    expectKeys(f, ['type', 'error', 'code', 'method', 'request'], []);
    expect(f).to.deep.include({ type: 'error', code: 44501, method: { cat: 'group', act: 'detail' } });
    expect(f.request.callback).to.equal('w3os-cb-denied');
  });
});
