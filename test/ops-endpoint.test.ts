/**
 * The edges of operation: --check-config, heartbeats that drop dead sockets, and wss with a
 * configured certificate.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { runToExit, startServer, tempDir } from './support/server';
import { Client } from './support/client';
import { accountsReady, newAccount } from './support/accounts';
import { useServerPerTest } from './support/suite';

describe('operations: config check, heartbeats, wss', function () {
  this.timeout(30_000);
  const ctx = useServerPerTest({ accounts: false });

  it('--check-config exits 0 for a valid file and 2 naming the bad setting otherwise', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'good.json'), JSON.stringify({ port: 9100, auth: 'open', 'retain-count': 50 }));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ port: 9100, fsync: 'sometimes' }));
    const good = await runToExit(['--check-config', '--config', join(dir, 'good.json')]);
    expect(good.code).to.equal(0);
    expect(good.output).to.match(/settings are valid/).and.match(/"retainCount":50/);
    const bad = await runToExit(['--check-config', '--config', join(dir, 'bad.json')]);
    expect(bad.code).to.equal(2);
    expect(bad.output).to.match(/fsync/).and.match(/always, grouped, off/);
  });

  it('drops a socket that stops answering pings, and keeps one that answers', async () => {
    ctx.srv = await startServer(['--heartbeat-ms', '200']);
    const dead = new WebSocket(ctx.srv.url, { autoPong: false });
    const alive = await Client.connect(ctx.srv.url);
    const closed = await new Promise<number>((resolve) => dead.once('close', (code) => resolve(code)));
    expect(closed).to.equal(1006); // terminated by the server, no close handshake
    await new Promise((r) => setTimeout(r, 500));
    expect(alive.open).to.equal(true);
    await alive.close();
  });

  it('serves wss when a certificate and key are configured', async () => {
    await accountsReady();
    const dir = tempDir();
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    ctx.srv = await startServer(['--tls-cert', cert, '--tls-key', key], { tls: true });
    expect(ctx.srv.url.startsWith('wss://')).to.equal(true);
    const c = await Client.connect(ctx.srv.url, { tls: { rejectUnauthorized: false } });
    const acc = newAccount();
    await c.signIn(acc);
    c.request({ cat: 'chat', act: 'chat', to: acc.address, msg: 'over tls' });
    expect((await c.next((f) => f.type === 'message')).msg).to.equal('over tls');
    await c.close();
  });
});
