/**
 * Restore elsewhere: a backup directory copied to a new place, an online backup taken while the
 * server runs, and the first service's backup file all come back on a fresh start.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startServer, tempDir } from './support/server';
import { Client, isMessage, isNotice, sleep } from './support/client';
import { newAccounts, type Account } from './support/accounts';
import { useServerPerTest } from './support/suite';

const BACKUP_TOOL = resolve(__dirname, '..', 'src', 'tools', 'backup.js');

describe('durability: restore from a backup directory', function () {
  this.timeout(60_000);
  const ctx = useServerPerTest();
  let a: Account, b: Account, c: Account;

  before(() => { [a, b, c] = newAccounts(3) as [Account, Account, Account]; });

  /** Creates a group and stores three messages for the absent `b`; returns the group id. */
  async function populate(url: string): Promise<string> {
    const ca = await Client.connect(url);
    await ca.signIn(a);
    ca.request({ cat: 'group', act: 'create', list: [b.address, c.address], callback: 'g' });
    const gid = (await ca.next((f) => f.method?.callback === 'g')).msg.id as string;
    for (let i = 0; i < 3; i++) ca.request({ cat: 'chat', act: 'chat', to: b.address, msg: { i }, mid: `m${i}` });
    await ca.nextN(3, isNotice('chat', 'chat'));
    await ca.close();
    return gid;
  }

  async function expectRestored(url: string, gid: string): Promise<void> {
    const cb = await Client.connect(url);
    await cb.signIn(b);
    const frames = await cb.nextN(4, isMessage((f) => f.method.cat === 'chat').bind(null) as never, 5000).catch(() => cb.queue);
    const msgs = cb.log.filter(isMessage((f) => f.method.cat === 'chat')).map((f) => f.msg.i);
    expect(msgs).to.deep.equal([0, 1, 2]);
    void frames;
    cb.request({ cat: 'group', act: 'detail', id: gid, callback: 'd' });
    const detail = await cb.next((f) => f.method?.callback === 'd');
    expect(detail.msg.group).to.have.members([a.address, b.address, c.address]);
    expect(detail.msg.manager).to.equal(a.address);
    await cb.close();
  }

  it('a backup directory copied to a new location restores', async () => {
    ctx.srv = await startServer([]);
    const gid = await populate(ctx.srv.url);
    await ctx.srv.stop({ keepData: true });
    const copy = join(tempDir(), 'moved');
    cpSync(ctx.srv.dataDir, copy, { recursive: true });
    ctx.srv = await startServer(['--data', copy]);
    await expectRestored(ctx.srv.url, gid);
  });

  it('an online backup taken while the server runs restores', async () => {
    ctx.srv = await startServer([]);
    const gid = await populate(ctx.srv.url);
    const dest = join(tempDir(), 'online');
    execFileSync(process.execPath, [BACKUP_TOOL, dest, '--data', ctx.srv.dataDir], { stdio: 'pipe' });
    await ctx.srv.stop();
    ctx.srv = await startServer(['--data', dest]);
    await expectRestored(ctx.srv.url, gid);
  });

  it("imports the first service's backup file once", async () => {
    const file = join(tempDir(), 'backup');
    const now = Date.now();
    writeFileSync(file, JSON.stringify({
      history: {
        [b.address]: [
          { from: a.address, to: b.address, content: 'old one', stamp: now - 1000 },
          { from: a.address, to: b.address, content: 'old two', stamp: now - 500, group: 'GDabcdefghij' },
          { type: 'notice', from: a.address, to: b.address, content: { method: { act: 'join', cat: 'group' }, data: { id: 'GDabcdefghij' } }, stamp: now },
        ],
        'not-an-account': [{ from: 'x', to: 'y', content: 1, stamp: 0 }],
      },
      group: {
        GDabcdefghij: {
          id: 'GDabcdefghij', group: [a.address, b.address], status: 1, create: now, update: now, notice: [],
          manager: a.address, founder: a.address, announce: { content: 'hello', expired: 0 }, permit: { free: true, announce: false }, block: [], nick: 'legacy',
        },
      },
      vertification: null,
    }));
    ctx.srv = await startServer(['--import-legacy', file]);
    const cb = await Client.connect(ctx.srv.url);
    await cb.signIn(b);
    const [m1, m2, n] = await cb.nextN(3, (f) => f.type === 'message' || f.type === 'notice');
    expect(m1).to.include({ msg: 'old one', from: a.address, to: b.address, type: 'message' });
    expect(m1.method).to.deep.equal({ cat: 'chat', act: 'chat' });
    expect(m2).to.include({ msg: 'old two', group: 'GDabcdefghij', cat: 'group', type: 'message' });
    expect(m2.method).to.deep.equal({ act: 'message', cat: 'group' });
    expect(n).to.include({ type: 'notice' });
    expect(n.msg).to.deep.equal({ id: 'GDabcdefghij' });
    cb.request({ cat: 'group', act: 'detail', id: 'GDabcdefghij', callback: 'd' });
    const detail = await cb.next((f) => f.method?.callback === 'd');
    expect(detail.msg).to.include({ nick: 'legacy', manager: a.address });
    expect(detail.msg.announce.content).to.equal('hello');
    await cb.close();

    // Restarting with the same flag does not import (and deliver) the history again.
    await ctx.srv.stop({ keepData: true });
    ctx.srv = await startServer(['--import-legacy', file], { dataDir: ctx.srv.dataDir });
    const again = await Client.connect(ctx.srv.url);
    await again.signIn(b);
    await sleep(300);
    expect(again.queue.filter((f) => f.type === 'message')).to.have.length(0);
    await again.close();
  });
});
