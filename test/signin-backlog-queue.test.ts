/**
 * Sign-in backlogs read one at a time (`--signin-backlogs 1`) on a real server. The account that has
 * the turn does not read (its socket paused, a large backlog): the others signing in meanwhile get
 * their Welcome but no backlog, nor live messages, until the turn passes; a socket that closes
 * while waiting leaves the queue, sent nothing; then each gets all of its own, in order, once, and
 * a live message sent while waiting comes after its backlog.
 */
import { expect } from 'chai';
import { newAccounts } from './support/accounts';
import { isMessage, isNotice, type Client, type Frame } from './support/client';
import { expectRisingSeq, isDirectAnswer, sendAcked } from './support/history';
import { useServer } from './support/suite';

describe('sign-in backlogs: a bounded number read at once', function () {
  this.timeout(60_000);
  const ctx = useServer(['--signin-backlogs', '1', '--rate-limit', '100000', '--max-buffered', String(512 * 1024)]);
  const PER = 200;
  /** The turn holder's backlog: more than the kernel's socket buffers hold, so its pump must wait. */
  const BIG = 3000;
  const range = (n: number): number[] => Array.from({ length: n }, (_, k) => k);

  it('the others wait their turn in order; one that closes while waiting leaves the queue; each gets all of its own once', async () => {
    const [alice, holder, gone, ...bobs] = newAccounts(6);
    const a = await ctx.signedIn(alice!, 'alice');
    const pad = 'x'.repeat(4000);
    await sendAcked(a, BIG, (i) => ({ cat: 'chat', act: 'chat', to: holder!.address, msg: { i, pad }, mid: `h${i}` }), isDirectAnswer);
    for (const to of [gone!, ...bobs]) {
      await sendAcked(a, PER, (i) => ({ cat: 'chat', act: 'chat', to: to.address, msg: i, mid: `${to.address}/${i}` }), isDirectAnswer);
    }
    const h = await ctx.connect('holder');
    const raw = (h as unknown as { ws: { _socket: { pause(): void; resume(): void } } }).ws._socket;
    h.request({ act: 'active', acc: holder!.address });
    await h.next(isNotice('chat', 'active'), 5000);
    raw.pause();
    await new Promise((r) => setTimeout(r, 300));

    const g = await ctx.connect('gone');
    g.request({ act: 'active', acc: gone!.address });
    await g.next(isNotice('chat', 'active'), 5000);
    await g.close();
    const cs: Client[] = [];
    for (const [i, b] of bobs.entries()) {
      const c = await ctx.connect(`bob${i}`);
      await c.signIn(b);
      cs.push(c);
    }
    a.request({ cat: 'chat', act: 'chat', to: bobs[2]!.address, msg: 'live', callback: 'live' });
    await a.next((f) => f.method?.callback === 'live', 5000);
    for (const c of cs) expect(await c.none(isMessage(), 200), `${c.name} waits its turn`).to.deep.equal([]);

    raw.resume();
    expect((await h.nextN(BIG, isMessage(), 30_000, 'the holder\'s backlog')).map((f: Frame) => f.msg.i)).to.deep.equal(range(BIG));
    for (const [i, c] of cs.entries()) {
      const want: unknown[] = range(PER);
      if (i === 2) want.push('live');
      const got = await c.nextN(want.length, isMessage(), 20_000, `bob${i}'s backlog`);
      expect(got.map((f: Frame) => f.msg), `bob${i}`).to.deep.equal(want);
      expectRisingSeq(got);
    }
    for (const c of cs) expect(await c.none(isMessage(), 100), `${c.name}: nothing twice`).to.deep.equal([]);
    const back = await ctx.signedIn(gone!, 'gone again');
    expect((await back.nextN(PER, isMessage(), 20_000)).map((f: Frame) => f.msg), 'closed while waiting: sent nothing').to.deep.equal(range(PER));
  });
});
