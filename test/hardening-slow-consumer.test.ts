/**
 * A client that stops reading while another floods it must not take the server's memory: past
 * --max-buffered bytes waiting, its socket is dropped and counted; an acknowledging account gets
 * everything it did not acknowledge at its next sign-in; everyone else carries on.
 */
import { expect } from 'chai';
import { getStatus } from './support/server';
import { useServer } from './support/suite';
import { Client, isMessage, isNotice, sleep } from './support/client';
import { newAccounts, type Account } from './support/accounts';

interface Status { slowSocketsDropped: number; process: { rssBytes: number } }

describe('hardening: a slow consumer', function () {
  this.timeout(90_000);
  const ctx = useServer(['--max-buffered', String(1024 * 1024), '--workers', '1', '--rate-limit', '100000'], { status: true });
  let a: Account, b: Account, c: Account;

  before(() => { [a, b, c] = newAccounts(3) as [Account, Account, Account]; });

  it('is dropped and counted, the server stays small and serves others, and an acknowledging reader loses nothing', async () => {
    const before = await getStatus<Status>(ctx.srv);
    // B acknowledges (ack mode), then stops reading its socket.
    const reader = await Client.connect(ctx.srv.url);
    await reader.signIn(b);
    reader.request({ cat: 'chat', act: 'ack', seq: 0 });
    await sleep(100);
    (reader.ws as unknown as { _socket: { pause(): void } })._socket.pause();

    // A floods B with 60 KB messages, each acknowledged once stored.
    const sender = await Client.connect(ctx.srv.url);
    await sender.signIn(a);
    const body = 'x'.repeat(60 * 1024);
    const n = 400;
    for (let i = 0; i < n; i++) {
      sender.request({ cat: 'chat', act: 'chat', to: b.address, msg: { i, body }, mid: `m${i}` });
      if (i % 50 === 49) await sender.nextN(50, isNotice('chat', 'chat'), 20_000, 'acks');
    }
    // (The paused reader cannot see its socket close; the server's count says it.)
    let after = await getStatus<Status>(ctx.srv);
    for (let i = 0; i < 100 && after.slowSocketsDropped === before.slowSocketsDropped; i++) {
      await sleep(100);
      after = await getStatus<Status>(ctx.srv);
    }
    expect(after.slowSocketsDropped - before.slowSocketsDropped, 'slow sockets dropped').to.equal(1);
    // 24 MB went to B; the server kept at most about --max-buffered of it in memory.
    expect(after.process.rssBytes - before.process.rssBytes, 'RSS growth').to.be.below(150 * 1024 * 1024);

    // Others carry on.
    const other = await Client.connect(ctx.srv.url);
    await other.signIn(c);
    sender.request({ cat: 'chat', act: 'chat', to: c.address, msg: 'still here' });
    expect((await other.next(isMessage())).msg).to.equal('still here');

    // B comes back: everything it did not acknowledge, once, in order.
    const back = await Client.connect(ctx.srv.url);
    await back.signIn(b);
    const got = await back.nextN(n, isMessage(), 30_000, 'backlog after the drop');
    expect(got.map((f) => f.msg.i)).to.deep.equal([...Array(n).keys()]);
    await Promise.all([sender.close(), other.close(), back.close()]);
    reader.ws.terminate();
  });
});
