/**
 * Settings of the real server: bad values stop start-up with a message naming the setting, and
 * the port comes from the flag over the environment over the config file.
 */
import { expect } from 'chai';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { Client } from './support/client';
import { freePort, runToExit, startServer, tempDir, type RunResult, type ServerHandle } from './support/server';

/** True when nothing accepts a connection on the loopback port. */
function nothingListens(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    ws.once('open', () => { ws.terminate(); resolve(false); });
    ws.once('error', () => resolve(true));
  });
}

describe('core: configuration', function () {
  const running: ServerHandle[] = [];
  afterEach(async () => { await Promise.all(running.splice(0).map((s) => s.stop())); });

  describe('bad settings stop start-up with a message naming the setting', () => {
    const dir = tempDir();
    const unknownSetting = join(dir, 'unknown.json');
    writeFileSync(unknownSetting, JSON.stringify({ colour: 'blue' }));
    const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
      ['--port abc', ['--port', 'abc'], {}, /\bport\b/],
      ['--port 70000', ['--port', '70000'], {}, /\bport\b/],
      ['--auth maybe', ['--auth', 'maybe'], {}, /\bauth\b/],
      ['an unknown flag', ['--no-such-flag', '1'], {}, /no-such-flag/],
      ['IMGC_PORT=abc', [], { IMGC_PORT: 'abc' }, /\bport\b/i],
      ['a config file with an unknown setting', ['--config', unknownSetting], {}, /colour/],
    ];
    // Start-up costs a second or two of CPU each: two processes at a time, each test reads its own.
    const runs = new Map<string, Promise<RunResult>>();
    before(() => {
      let slot: Promise<unknown> = Promise.resolve();
      let other: Promise<unknown> = Promise.resolve();
      for (const [what, args, env] of cases) {
        const run = slot.then(() => runToExit([...args, '--host', '127.0.0.1', '--data', dir], { env, timeoutMs: 30_000 }));
        runs.set(what, run);
        [slot, other] = [other, run];
      }
    });
    after(async () => {
      await Promise.all(runs.values());
      rmSync(dir, { recursive: true, force: true });
    });
    for (const [what, , , names] of cases) {
      it(`${what}: exits non-zero with a message naming the setting`, async () => {
        const r = await runs.get(what)!;
        expect(r.code, `exit ${JSON.stringify(r)}`).to.be.a('number').and.not.equal(0);
        expect(r.output, 'the message').to.match(names);
      });
    }
  });

  describe('where the port comes from', () => {
    const dirs: string[] = [];
    after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
    const config = (settings: Record<string, unknown>): string => {
      const dir = tempDir('imgc-config-');
      dirs.push(dir);
      const file = join(dir, 'imgc.json');
      writeFileSync(file, JSON.stringify({ host: '127.0.0.1', auth: 'open', workers: 1, ...settings }));
      return file;
    };
    const expectServes = async (port: number): Promise<void> => {
      const c = await Client.connect(`ws://127.0.0.1:${port}`);
      expect(c.init.act).to.equal('init');
      await c.close();
    };

    it('a config file sets the port (and the other settings it names: auth signed)', async () => {
      const p = await freePort();
      const file = config({ port: p, auth: 'signed' });
      running.push(await startServer(['--config', file], { omit: ['port', 'host', 'auth', 'workers'], port: p }));
      const c = await Client.connect(`ws://127.0.0.1:${p}`);
      c.request({ act: 'active', acc: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY' });
      const f = await c.next(() => true, 5000);
      await c.close();
      expect(f, 'an unsigned active in signed mode').to.deep.include({ type: 'error', code: 44004 });
    });

    it('a flag overrides the config file\'s port', async () => {
      const [pFile, pFlag] = [await freePort(), await freePort()];
      const file = config({ port: pFile });
      running.push(await startServer(['--config', file, '--port', String(pFlag)], { omit: ['host', 'auth', 'workers'] }));
      await expectServes(pFlag);
      expect(await nothingListens(pFile), `something listens on the config file's port ${pFile}`).to.equal(true);
    });

    it('IMGC_PORT sets the port, over the config file\'s', async () => {
      const [pFile, pEnv] = [await freePort(), await freePort()];
      const file = config({ port: pFile });
      running.push(await startServer(['--config', file], { omit: ['port', 'host', 'auth', 'workers'], port: pEnv, env: { IMGC_PORT: String(pEnv) } }));
      await expectServes(pEnv);
      expect(await nothingListens(pFile), `something listens on the config file's port ${pFile}`).to.equal(true);
    });

    it('a flag overrides IMGC_PORT', async () => {
      const [pEnv, pFlag] = [await freePort(), await freePort()];
      running.push(await startServer(['--port', String(pFlag)], { env: { IMGC_PORT: String(pEnv) } }));
      await expectServes(pFlag);
      expect(await nothingListens(pEnv), `something listens on IMGC_PORT ${pEnv}`).to.equal(true);
    });
  });
});
