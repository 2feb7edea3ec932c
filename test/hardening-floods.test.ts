/**
 * Floods from free accounts, on a real server and store: rotating accounts from one address meet
 * the per-address group quota, which a restart does not reset; adds by strangers are bounded per
 * added account (a contact's still come through); under the free-disk watermark new groups and new
 * conversations get 45007 while an existing conversation goes on.
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import { randomAddresses } from './support/accounts';
import { ClientPool, isNotice, type Client } from './support/client';
import { startServer, tempDir, type ServerHandle } from './support/server';
import { useServerPerTest } from './support/suite';

const created = isNotice('group', 'create');

describe('hardening: floods', function () {
  this.timeout(60_000);
  const ctx = useServerPerTest();
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());
  const signedIn = (srv: ServerHandle, account: string): Promise<Client> => pool.signedIn(srv.url, account, account.slice(0, 6));

  async function create(c: Client, list: string[], cb: string): Promise<Record<string, any>> {
    c.request({ cat: 'group', act: 'create', list, callback: cb });
    return c.next((f) => f.method?.callback === cb || f.request?.callback === cb, 5000, `answer to ${cb}`);
  }

  it('group creation is limited per remote address whatever the accounts, and the quota is kept across a restart', async () => {
    const dir = tempDir();
    try {
      const args = ['--groups-per-hour-per-address', '3', '--workers', '1'];
      ctx.srv = await startServer(args, { dataDir: dir });
      const accounts = randomAddresses(6);
      for (let i = 0; i < 3; i++) expect((await create(await signedIn(ctx.srv, accounts[i]!), [accounts[5]!], `c${i}`)).type).to.equal('notice');
      const refused = await create(await signedIn(ctx.srv, accounts[3]!), [accounts[5]!], 'c3');
      expect(refused).to.include({ type: 'error', code: 44029 });
      expect(refused.retryAfterMs).to.be.within(1, 3600_000);
      await pool.closeAll();
      await ctx.srv.stop();
      ctx.srv = await startServer(args, { dataDir: dir });
      const after = await create(await signedIn(ctx.srv, accounts[4]!), [accounts[5]!], 'c4');
      expect(after, 'a fresh account after the restart').to.include({ type: 'error', code: 44029 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an account is added by strangers at most --stranger-adds-per-hour times an hour; the adder is told, a contact still adds it', async () => {
    ctx.srv = await startServer(['--stranger-adds-per-hour', '2', '--workers', '1']);
    const [victim, contact, ...strangers] = randomAddresses(6);
    const v = await signedIn(ctx.srv, victim!);
    // The victim wrote to its contact once: the contact is no stranger to it.
    v.request({ cat: 'chat', act: 'chat', to: contact, msg: 'hi', callback: 'hi' });
    await v.next((f) => f.method?.callback === 'hi');
    const answers = [];
    for (const [i, s] of strangers.entries()) answers.push(await create(await signedIn(ctx.srv, s), [victim!], `s${i}`));
    expect(answers.map((a) => a.msg.skipped ?? [])).to.deep.equal([[], [], [victim], [victim]]);
    const c = await signedIn(ctx.srv, contact!);
    const fromContact = await create(c, [victim!], 'k');
    expect(fromContact.msg.skipped).to.equal(undefined);
    const notices = await v.nextN(3, created, 5000, 'create notices');
    expect(notices.map((n) => n.msg.id)).to.deep.equal([answers[0]!.msg.id, answers[1]!.msg.id, fromContact.msg.id]);
    expect(await v.none(created, 300)).to.deep.equal([]);
    // A join of the victim by a stranger past the bound is refused.
    const s0 = await signedIn(ctx.srv, strangers[2]!);
    s0.request({ cat: 'group', act: 'join', id: answers[2]!.msg.id, account: victim, callback: 'j' });
    expect(await s0.next((f) => f.request?.callback === 'j')).to.include({ type: 'error', code: 44029 });
  });

  it('under the free-disk watermark new groups and first messages get 45007; an existing conversation goes on', async () => {
    const dir = tempDir();
    try {
      ctx.srv = await startServer(['--workers', '1'], { dataDir: dir });
      const [alice, bob, carol] = randomAddresses(3);
      let a = await signedIn(ctx.srv, alice!);
      a.request({ cat: 'chat', act: 'chat', to: bob, msg: 'before', callback: 'm0' });
      await a.next((f) => f.method?.callback === 'm0');
      await pool.closeAll();
      await ctx.srv.stop();
      ctx.srv = await startServer(['--workers', '1', '--min-free-mb', '999999999'], { dataDir: dir });
      a = await signedIn(ctx.srv, alice!);
      const b = await signedIn(ctx.srv, bob!);
      a.request({ cat: 'chat', act: 'chat', to: bob, msg: 'after', callback: 'm1' });
      await a.next((f) => f.method?.callback === 'm1', 5000, 'the existing conversation goes on');
      expect((await b.next((f) => f.type === 'message' && f.msg === 'after')).from).to.equal(alice);
      const fresh = await a.expectError({ cat: 'chat', act: 'chat', to: carol, msg: 'new', callback: 'm2' });
      expect(fresh.code).to.equal(45007);
      expect(fresh.error).to.match(/low on disk space/);
      expect((await create(a, [bob!], 'g')).code).to.equal(45007);
      expect(ctx.srv.output()).to.match(/free disk space under --min-free-mb/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
