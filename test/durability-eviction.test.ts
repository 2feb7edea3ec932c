/**
 * Quiet group actors leave memory (their state is in the store) and come back on their next
 * message, also across a restart and an online backup.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { freePort, startServer, statusFetch, tempDir } from './support/server';
import { Client, isMessage, sleep } from './support/client';
import { newAccounts, type Account } from './support/accounts';
import { useServerPerTest } from './support/suite';

const BACKUP_TOOL = resolve(__dirname, '..', 'src', 'tools', 'backup.js');

describe('durability: idle groups are evicted and reactivated', function () {
  this.timeout(60_000);
  const ctx = useServerPerTest();
  let a: Account, b: Account;

  before(() => { [a, b] = newAccounts(2) as [Account, Account]; });

  it('an idle group leaves memory and answers its next message with its state', async () => {
    const statusPort = await freePort();
    ctx.srv = await startServer(['--group-idle-ms', '300', '--status-port', String(statusPort)]);
    const ca = await Client.connect(ctx.srv.url);
    await ca.signIn(a);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ca.request({ cat: 'group', act: 'create', list: [b.address], callback: `g${i}` });
      ids.push((await ca.next((f) => f.method?.callback === `g${i}`)).msg.id);
    }
    ca.request({ cat: 'group', act: 'update', id: ids[0], key: 'nick', val: 'before-eviction', callback: 'u' });
    await ca.next((f) => f.method?.callback === 'u');

    // Quiet for a while: every group is dropped from memory.
    let st: Record<string, any> = {};
    for (let i = 0; i < 40; i++) {
      await sleep(250);
      st = await (await statusFetch(ctx.srv!, '/status')).json() as Record<string, any>;
      if (st.groups.resident === 0) break;
    }
    expect(st.groups).to.deep.equal({ resident: 0 });

    // The next message brings it back with its state; a chat still reaches the member.
    const cb = await Client.connect(ctx.srv.url);
    await cb.signIn(b);
    cb.clear();
    ca.request({ cat: 'group', act: 'detail', id: ids[0], callback: 'd' });
    const d = await ca.next((f) => f.method?.callback === 'd');
    expect(d.msg.nick).to.equal('before-eviction');
    expect(d.msg.group).to.have.members([a.address, b.address]);
    ca.request({ cat: 'group', act: 'chat', to: ids[1], msg: 'back from the store' });
    expect((await cb.next(isMessage())).msg).to.equal('back from the store');

    // A destroyed group does not come back, even after a restart.
    ca.request({ cat: 'group', act: 'destory', id: ids[2], callback: 'x' });
    await ca.next((f) => f.method?.callback === 'x');
    await sleep(800);

    // An online backup carries the groups that are not in memory; so does a restart.
    const dest = join(tempDir(), 'idle-backup');
    execFileSync(process.execPath, [BACKUP_TOOL, dest, '--data', ctx.srv.dataDir], { stdio: 'pipe' });
    await Promise.all([ca.close(), cb.close()]);
    await ctx.srv.stop();
    ctx.srv = await startServer(['--data', dest]);
    const c2 = await Client.connect(ctx.srv.url);
    await c2.signIn(a);
    for (const [i, id] of ids.entries()) {
      c2.request({ cat: 'group', act: 'detail', id, callback: `r${i}` });
      const f = await c2.next((x) => x.method?.callback === `r${i}` || x.request?.callback === `r${i}`);
      if (i === 2) expect(f.code, 'destroyed stays destroyed').to.equal(44100);
      else expect(f.msg.group, `group ${i}`).to.have.members([a.address, b.address]);
    }
    await c2.close();
  });
});
