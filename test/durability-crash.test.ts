/**
 * Crash safety: the server is killed with SIGKILL in the middle of a stream of messages and group
 * changes, then restarted on the same backup directory. Everything it acknowledged must be there,
 * and an acknowledging client must never get a message twice.
 */
import { expect } from 'chai';
import { startServer } from './support/server';
import { Client, isMessage, isNotice, sleep, type Frame } from './support/client';
import { newAccounts, type Account } from './support/accounts';
import { useServerPerTest } from './support/suite';

describe('durability: SIGKILL mid-stream, restart from the same directory', function () {
  this.timeout(60_000);
  const ctx = useServerPerTest();
  let accounts: Account[];

  before(() => { accounts = newAccounts(4); });

  it('delivers every acknowledged message and keeps every acknowledged group change', async () => {
    const [sender, receiver, other] = accounts as [Account, Account, Account];
    ctx.srv = await startServer(['--workers', '2']);
    const s = await Client.connect(ctx.srv.url, { name: 'sender' });
    await s.signIn(sender);

    // A group whose nick we keep changing, and new groups created during the stream.
    s.request({ cat: 'group', act: 'create', list: [receiver.address, other.address], callback: 'g0' });
    const gid = (await s.next((f) => f.method?.callback === 'g0')).msg.id as string;

    const ackedMsgs = new Set<number>();
    const ackedNicks: number[] = [];
    const ackedGroups: string[] = [];
    s.ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      if (isNotice('chat', 'chat')(f)) ackedMsgs.add(Number(f.msg.mid));
      if (isNotice('group', 'update')(f) && f.method.callback) ackedNicks.push(Number(f.msg.value));
      if (isNotice('group', 'create')(f) && f.method.callback?.startsWith('c')) ackedGroups.push(f.msg.id as string);
    });

    // Stream until well past a hundred acknowledgements, then kill without warning.
    let i = 0;
    const deadline = Date.now() + 20_000;
    while (ackedMsgs.size < 150 && Date.now() < deadline) {
      for (let k = 0; k < 10; k++, i++) {
        s.request({ cat: 'chat', act: 'chat', to: receiver.address, msg: { i }, mid: String(i) });
        if (i % 5 === 0) s.request({ cat: 'group', act: 'update', id: gid, key: 'nick', val: String(i), callback: `n${i}` });
        if (i % 20 === 0) s.request({ cat: 'group', act: 'create', list: [receiver.address], callback: `c${i}` });
      }
      await sleep(5);
    }
    const exit = await ctx.srv.kill('SIGKILL');
    expect(exit.signal).to.equal('SIGKILL');
    expect(ackedMsgs.size).to.be.greaterThan(100);
    const sent = i;
    expect(ackedMsgs.size).to.be.at.most(sent);

    ctx.srv = await startServer(['--workers', '2'], { dataDir: ctx.srv.dataDir });
    const r = await Client.connect(ctx.srv.url, { name: 'receiver' });
    await r.signIn(receiver);
    const got: Frame[] = [];
    // Everything acknowledged arrives; collect until the stream goes quiet.
    for (;;) {
      const more = await r.collect(300);
      const msgs = more.filter(isMessage((f) => f.method.cat === 'chat'));
      got.push(...msgs);
      if (more.length === 0) break;
    }
    const delivered = got.map((f) => Number(f.msg.i));
    for (const m of ackedMsgs) expect(delivered, `acknowledged message ${m}`).to.include(m);
    expect(new Set(delivered).size, 'no message twice').to.equal(delivered.length);
    const seqs = got.map((f) => f.seq as number);
    expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b));
    // Sent order is kept: the numbers rise along the sequence.
    expect(delivered).to.deep.equal([...delivered].sort((a, b) => a - b));

    const s2 = await Client.connect(ctx.srv.url, { name: 'sender2' });
    await s2.signIn(sender);
    s2.request({ cat: 'group', act: 'detail', id: gid, callback: 'd' });
    const detail = (await s2.next((f) => f.method?.callback === 'd')).msg;
    const lastAcked = Math.max(...ackedNicks);
    expect(Number(detail.nick)).to.be.at.least(lastAcked);
    for (const g of ackedGroups) {
      s2.request({ cat: 'group', act: 'detail', id: g, callback: `d${g}` });
      const f = await s2.next((x) => x.method?.callback === `d${g}` || x.request?.callback === `d${g}`);
      expect(f.type, `acknowledged group ${g}`).to.equal('notice');
      expect(f.msg.group).to.include(receiver.address);
    }
    await Promise.all([r.close(), s2.close()]);
  });

  it('an acknowledging client never gets a message twice across crashes', async () => {
    const [sender, receiver] = accounts as [Account, Account];
    ctx.srv = await startServer(['--workers', '2']);
    // The receiver switches to acknowledging mode once (ack of seq 0) and goes away.
    const r0 = await Client.connect(ctx.srv.url);
    await r0.signIn(receiver);
    r0.request({ cat: 'chat', act: 'ack', seq: 0 });
    await sleep(100);
    await r0.close();
    const s = await Client.connect(ctx.srv.url);
    await s.signIn(sender);
    for (let i = 0; i < 30; i++) s.request({ cat: 'chat', act: 'chat', to: receiver.address, msg: { i }, mid: `a${i}` });
    await s.nextN(30, isNotice('chat', 'chat'));

    let r = await Client.connect(ctx.srv.url);
    await r.signIn(receiver);
    const first = await r.nextN(30, isMessage());
    expect(first.map((f) => f.msg.i)).to.deep.equal([...Array(30).keys()]);
    // Acknowledge the first 20 only, then crash.
    r.request({ cat: 'chat', act: 'ack', seq: first[19]!.seq });
    await sleep(200);
    await ctx.srv.kill('SIGKILL');

    ctx.srv = await startServer(['--workers', '2'], { dataDir: ctx.srv.dataDir });
    r = await Client.connect(ctx.srv.url);
    await r.signIn(receiver);
    const again = await r.nextN(10, isMessage());
    expect(again.map((f) => f.msg.i)).to.deep.equal([20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
    expect(await r.none(isMessage(), 300)).to.have.length(0);
    r.request({ cat: 'chat', act: 'ack', seq: again[9]!.seq });
    await sleep(200);
    await ctx.srv.kill('SIGKILL');

    ctx.srv = await startServer(['--workers', '2'], { dataDir: ctx.srv.dataDir });
    r = await Client.connect(ctx.srv.url);
    await r.signIn(receiver);
    expect(await r.none(isMessage(), 400), 'nothing acknowledged comes back').to.have.length(0);
    // A resend of an already accepted message id is not delivered twice.
    const s3 = await Client.connect(ctx.srv.url);
    await s3.signIn(sender);
    s3.request({ cat: 'chat', act: 'chat', to: receiver.address, msg: { i: 5 }, mid: 'a5' });
    s3.request({ cat: 'chat', act: 'chat', to: receiver.address, msg: { i: 99 }, mid: 'new' });
    const live = await r.next(isMessage());
    expect(live.msg.i).to.equal(99);
    expect(await r.none(isMessage(), 300)).to.have.length(0);
    await Promise.all([r.close(), s3.close()]);
  });

  it('a message kept for an absent account without a client message id is written within moments', async () => {
    const [sender, receiver] = accounts as [Account, Account];
    ctx.srv = await startServer(['--workers', '2']);
    const s = await Client.connect(ctx.srv.url);
    await s.signIn(sender);
    // No mid, no callback: nobody waits for this message, yet it must reach the disk soon.
    s.request({ cat: 'chat', act: 'chat', to: receiver.address, msg: 'kept without an id' });
    await sleep(300);
    await ctx.srv.kill('SIGKILL');
    ctx.srv = await startServer(['--workers', '2'], { dataDir: ctx.srv.dataDir });
    const r = await Client.connect(ctx.srv.url);
    await r.signIn(receiver);
    expect((await r.next(isMessage())).msg).to.equal('kept without an id');
    await r.close();
  });
});
