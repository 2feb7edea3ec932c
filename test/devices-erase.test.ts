/**
 * A deleted message's content leaves the data directory: after a delete (of a message that was also
 * edited, so two versions of the content existed), a few more writes and a stop, no file of the
 * data directory holds either version (each a unique marker string), and neither does a compacting
 * backup of it. The message itself was in the files before the delete (the check can fail).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { backupDataDir } from '../src/store/backup';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { ClientPool } from './support/client';
import { startServer, tempDir } from './support/server';
import { ask, device, makeGroup } from './support/devices';

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => d.isDirectory() ? files(path.join(dir, d.name)) : [path.join(dir, d.name)]);
}

/** The files under `dir` that hold `marker`. */
function holding(dir: string, marker: string): string[] {
  return files(dir).filter((f) => fs.readFileSync(f).includes(marker));
}

describe('devices: a delete removes the content from the data directory', function () {
  this.timeout(60_000);
  const pool = new ClientPool();
  afterEach(() => pool.closeAll());

  for (const where of ['direct', 'group'] as const) {
    it(`${where}: no file holds the original or the edited content after delete, more writes and stop`, async () => {
      await accountsReady();
      const [alice, bob] = newAccounts(2) as [Account, Account];
      const original = `ORIGINAL-${randomBytes(12).toString('hex')}`;
      const edited = `EDITED-${randomBytes(12).toString('hex')}`;
      const kept = `KEPT-${randomBytes(12).toString('hex')}`;
      let srv = await startServer();
      const dataDir = srv.dataDir;
      let backup: string | undefined;
      try {
        const a1 = await device(pool, srv.url, alice, 'a1', false);
        const b1 = await device(pool, srv.url, bob, 'b1', false);
        const target = where === 'direct' ? { with: bob.address } : { group: await makeGroup(a1, [bob], [b1]) };
        const send = (msg: unknown): Promise<{ seq?: number }> => where === 'direct'
          ? ask(a1, { cat: 'chat', act: 'chat', to: bob.address, msg, mid: String(Math.random()) })
          : ask(a1, { cat: 'group', act: 'chat', to: target.group, msg, mid: String(Math.random()) });
        await send({ text: original });
        const seq = (await b1.next((f) => f.msg?.text === original, 5000, 'the message')).seq as number;
        await send({ text: kept });
        // Stopped and started again: the content is in the files now (the test could see it). The
        // edit may reuse the original's page, so the original is looked for before it.
        await pool.closeAll();
        await srv.stop({ keepData: true });
        expect(holding(dataDir, original).length, 'the original is on disk before the edit').to.be.greaterThan(0);
        srv = await startServer([], { dataDir });
        const a1b = await device(pool, srv.url, alice, 'a1b', false);
        const e = await ask(a1b, { cat: 'chat', act: 'edit', ...target, seq, msg: { text: edited } });
        expect(e.type, JSON.stringify(e)).to.equal('notice');
        await pool.closeAll();
        await srv.stop({ keepData: true });
        expect(holding(dataDir, edited).length, 'the edit is on disk before the delete').to.be.greaterThan(0);
        srv = await startServer([], { dataDir });
        const a2 = await device(pool, srv.url, alice, 'a2', false);
        const d = await ask(a2, { cat: 'chat', act: 'delete', ...target, seq });
        expect(d.type, JSON.stringify(d)).to.equal('notice');
        // More commits: LMDB reuses the pages the rewrite freed (with none, a freed page still
        // holds the edited content: only the compacting backup is sure to hold no trace).
        for (let i = 0; i < 40; i++) {
          const r = where === 'direct'
            ? await ask(a2, { cat: 'chat', act: 'chat', to: bob.address, msg: `more ${i}`, mid: `x${i}` })
            : await ask(a2, { cat: 'group', act: 'chat', to: target.group, msg: `more ${i}`, mid: `x${i}` });
          expect(r.type).to.equal('notice');
        }
        await pool.closeAll();
        await srv.stop({ keepData: true });
        backup = tempDir('imgc-erase-backup-');
        fs.rmSync(backup, { recursive: true, force: true });
        await backupDataDir(dataDir, backup, { log: pino({ level: 'silent' }) });
        expect(holding(backup, kept).length, 'the backup holds the messages that were kept').to.be.greaterThan(0);
        expect(holding(backup, original), 'compacting backup: original').to.deep.equal([]);
        expect(holding(backup, edited), 'compacting backup: edited').to.deep.equal([]);
        expect(holding(dataDir, kept).length).to.be.greaterThan(0);
        expect(holding(dataDir, original), 'data directory: original').to.deep.equal([]);
        expect(holding(dataDir, edited), 'data directory: edited').to.deep.equal([]);
      } finally {
        await srv.stop().catch(() => undefined);
        fs.rmSync(dataDir, { recursive: true, force: true });
        if (backup !== undefined) fs.rmSync(backup, { recursive: true, force: true });
      }
    });
  }
});
