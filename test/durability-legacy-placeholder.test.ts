/**
 * `--import-legacy` with the rows the first service really stored: every group notice but `create`
 * carried the placeholder `"group":"GROUP ID"` instead of a group id (the "nick changed" and
 * "members changed" notices). Each such row is imported without a group and reaches its account,
 * through the real server, in the order it was stored.
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir } from './support/server';
import { Client, type Frame } from './support/client';
import { newAccounts, type Account } from './support/accounts';
import { useServerPerTest } from './support/suite';

const GID = 'GDplacehold';

describe('durability: legacy import of rows with the "GROUP ID" placeholder', function () {
  this.timeout(60_000);
  const ctx = useServerPerTest();
  let a: Account, b: Account, c: Account;

  before(() => { [a, b, c] = newAccounts(3) as [Account, Account, Account]; });

  it('every stored row arrives, the placeholder rows too, in the order stored', async () => {
    const now = Date.now();
    const create = { method: { act: 'create', cat: 'group' }, data: { id: GID } };
    const nick = { method: { act: 'update', cat: 'group' }, data: { key: 'nick', value: 'old friends', id: GID, from: a.address } };
    const members = { method: { act: 'members', cat: 'group' }, data: { id: GID, from: a.address } };
    const history: Record<string, unknown[]> = {
      [b.address]: [
        { type: 'notice', from: a.address, to: b.address, content: create, stamp: now - 600, group: GID },
        { from: a.address, to: b.address, content: 'direct', stamp: now - 500 },
        { type: 'notice', from: a.address, to: b.address, content: nick, stamp: now - 400, group: 'GROUP ID' },
        { from: a.address, to: b.address, content: 'in the group', stamp: now - 300, group: GID },
        { type: 'notice', from: a.address, to: b.address, content: members, stamp: now - 200, group: 'GROUP ID' },
      ],
      [c.address]: [
        { type: 'notice', from: a.address, to: c.address, content: members, stamp: now - 100, group: 'GROUP ID' },
      ],
    };
    const file = join(tempDir(), 'backup');
    writeFileSync(file, JSON.stringify({
      history,
      group: {
        [GID]: {
          id: GID, group: [a.address, b.address, c.address], status: 1, create: now - 600, update: now - 200, notice: [],
          manager: a.address, founder: a.address, announce: { content: '', expired: 0 }, permit: { free: true, announce: false },
          block: [], nick: 'old friends',
        },
      },
      vertification: null,
    }));

    ctx.srv = await startServer(['--import-legacy', file]);
    const marker = JSON.parse(readFileSync(join(ctx.srv.dataDir, 'legacy-import.json'), 'utf8')) as { rows: number; skipped: { rows: number } };
    expect(marker.rows, 'rows imported').to.equal(6);
    expect(marker.skipped.rows, 'rows skipped').to.equal(0);

    const stored = (f: Frame): boolean => f.type === 'message' || (f.type === 'notice' && f.msg !== 'Welcome');
    const cb = await Client.connect(ctx.srv.url);
    await cb.signIn(b);
    const got = await cb.nextN(5, stored, 5000, "b's stored rows");
    expect(got.map((f) => f.type === 'message' ? f.msg : f.method.act)).to.deep.equal(['create', 'direct', 'update', 'in the group', 'members']);
    expect(got[0]).to.deep.include({ type: 'notice', msg: { id: GID }, method: { act: 'create', cat: 'group' } });
    expect(got[1]).to.deep.include({ type: 'message', from: a.address, to: b.address, method: { cat: 'chat', act: 'chat' } });
    expect(got[2]).to.deep.include({ type: 'notice', msg: nick.data, method: nick.method });
    expect(got[3]).to.deep.include({ type: 'message', from: a.address, to: b.address, group: GID, method: { act: 'message', cat: 'group' } });
    expect(got[4]).to.deep.include({ type: 'notice', msg: members.data, method: members.method });
    // Imported without a group: no frame carries the placeholder.
    expect(got.filter((f) => f.group === 'GROUP ID')).to.deep.equal([]);
    expect(got.map((f) => f.seq)).to.deep.equal([1, 2, 3, 4, 5].map((k) => got[0]!.seq + k - 1));
    await cb.close();

    const cc = await Client.connect(ctx.srv.url);
    await cc.signIn(c);
    const [n] = await cc.nextN(1, stored, 5000, "c's stored row");
    expect(n).to.deep.include({ type: 'notice', msg: members.data, method: members.method });
    await cc.close();
  });
});
