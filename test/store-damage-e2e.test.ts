/**
 * A damaged store on a real server (issue 20): bits flipped in data.mdb inside a stored direct
 * message and inside a group's stored state, then a restart. The damaged message is served neither
 * in the sign-in backlog nor in history (not even with its text changed by the flip), the rest of
 * the conversation is; the group answers 41401 and the process stays up; the damage is counted in
 * /status and /metrics; the check command names both records and exits 1.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { Client, isMessage, isNotice } from './support/client';
import { startServer, getStatus, statusFetch, tempDir, type ServerHandle } from './support/server';
import { drainQuiet, history } from './support/history';
import { flipInStore, flipValueOf } from './support/damage';
import { rm } from './support/store-log';

const CHECK = resolve(__dirname, '..', 'src', 'tools', 'check.js');
const TEXTS = [0, 1, 2, 3, 4].map((i) => `dm-${i}-marker`);

describe('store damage on a real server: flipped bits are detected, not served, counted, and the process stays up', function () {
  this.timeout(60_000);
  let srv: ServerHandle | undefined;
  let a: Account, b: Account;
  const dir = tempDir();

  before(async () => {
    await accountsReady();
    [a, b] = newAccounts(2) as [Account, Account];
  });
  after(async () => {
    await srv?.stop({ keepData: true });
    rm(dir);
  });

  it('a flipped message is left out of the backlog and history; a flipped group state answers 41401', async () => {
    srv = await startServer([], { dataDir: dir, status: true });
    const ca = await Client.connect(srv.url);
    await ca.signIn(a);
    for (const [i, text] of TEXTS.entries()) ca.request({ cat: 'chat', act: 'chat', to: b.address, msg: text, mid: `k${i}` });
    await ca.nextN(TEXTS.length, (f) => isNotice('chat', 'chat')(f) && typeof f.msg?.mid === 'string');
    ca.request({ cat: 'group', act: 'create', list: [b.address], callback: 'mk' });
    const gid = (await ca.next((f) => f.method?.callback === 'mk')).msg.id as string;
    await ca.close();
    await srv.stop({ keepData: true });

    // '2' becomes '3': unchecked, the message would be served with another text.
    expect(flipInStore(dir, 'dm-2-marker', 3), 'the record found in data.mdb').to.be.greaterThan(0);
    expect(flipValueOf(dir, `group:${gid}`), 'the group state found in data.mdb').to.be.greaterThan(0);

    srv = await startServer([], { dataDir: dir, status: true });
    const cb = await Client.connect(srv.url);
    await cb.signIn(b);
    const backlog = (await drainQuiet(cb, 500)).filter(isMessage()).map((f) => f.msg as string);
    expect(backlog.filter((m) => m.startsWith('dm-')), 'backlog').to.deep.equal(['dm-0-marker', 'dm-1-marker', 'dm-3-marker', 'dm-4-marker']);

    const h = await history(cb, { with: a.address });
    expect(h.type, JSON.stringify(h)).to.equal('notice');
    expect((h.msg.messages as { msg: string }[]).map((m) => m.msg), 'history').to.deep.equal(['dm-0-marker', 'dm-1-marker', 'dm-3-marker', 'dm-4-marker']);

    cb.request({ cat: 'group', act: 'detail', id: gid, callback: 'd1' });
    const d = await cb.next((f) => f.method?.callback === 'd1' || f.request?.callback === 'd1', 5000, 'detail answer');
    expect(d.type, JSON.stringify(d)).to.equal('error');
    expect(d.code).to.equal(41401);
    // Still up and serving.
    const again = await history(cb, { with: a.address, limit: 1 });
    expect(again.type).to.equal('notice');
    expect(srv.proc.exitCode).to.equal(null);

    const status = await getStatus<{ delivery: { store: { damaged: number; damagedLast: string } }; brokenGroups: number }>(srv);
    expect(status.delivery.store.damaged, 'the record and the state').to.equal(2);
    expect(status.brokenGroups).to.equal(1);
    const metrics = await (await statusFetch(srv, '/metrics')).text();
    expect(metrics).to.match(/^imgc_store_damaged_records_total 2$/m);
    await cb.close();
    await srv.stop({ keepData: true });
    srv = undefined;

    const r = spawnSync(process.execPath, [CHECK, '--data', dir], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).to.match(/damaged: log d:\S+ offset \d+/);
    expect(r.stdout).to.include(`damaged: states group:${gid}`);
  });
});
