/**
 * Verification by payment end to end: the real server watches the development node (real
 * Substrate JSON-RPC over a socket, real SCALE data) and a client pays the exact amount.
 */
import { expect } from 'chai';
import WebSocket from 'ws';
import { DevNode } from '../src/chain/devnode/server';
import { verifyToken } from '../src/chain/token';
import { startServer, type ServerHandle } from './support/server';
import { Client, isError, isNotice, sleep } from './support/client';
import { accountsReady, devAccount, newAccounts, type Account } from './support/accounts';

describe('verification by payment against a development node', function () {
  this.timeout(60_000);
  let node: DevNode;
  let srv: ServerHandle | undefined;
  let target: Account;

  before(async () => {
    await accountsReady();
    target = devAccount('Ferdie');
  });
  beforeEach(async () => { node = await DevNode.start(); });
  afterEach(async () => {
    if (srv) await srv.stop();
    srv = undefined;
    await node.stop();
  });

  const start = (extra: string[] = [], dataDir?: string) =>
    startServer(['--chain', node.url, '--verify-target', target.address, ...extra], dataDir ? { dataDir } : {});

  /** `reg` until the watcher has connected (before that the server answers 45003). */
  async function reg(c: Client, account: string): Promise<Record<string, any>> {
    for (let i = 0; i < 50; i++) {
      c.request({ cat: 'vertify', act: 'reg', account, callback: `r${i}` });
      const f = await c.next((x) => x.method?.callback === `r${i}` || x.request?.callback === `r${i}`);
      if (f.type === 'notice') return f.msg;
      expect(f.code).to.equal(45003);
      await sleep(100);
    }
    throw new Error('the server never connected to the chain');
  }

  it('the exact amount verifies, the client gets done, and a token checks out with the published key', async () => {
    srv = await start();
    const [acc] = newAccounts(1) as [Account];
    const c = await Client.connect(srv.url);
    await c.signIn(acc);
    const r1 = await reg(c, acc.address);
    expect(r1.account).to.equal(target.address);
    expect(r1.amount).to.match(/^\d+\.\d+$/);
    const again = await reg(c, acc.address);
    expect(again.base, 'a second reg returns the same amount').to.equal(r1.base);

    node.addTransfer(acc.address, target.address, BigInt(r1.base));
    await node.finalizeBlock();
    const done = await c.next(isNotice('vertify', 'done'), 10_000);
    expect(done.msg.data).to.include({ account: acc.address, amount: r1.base, done: true });
    expect(done.msg.data.blockNumber).to.be.a('number');

    const proof = await reg(c, acc.address);
    expect(proof).to.include({ done: true, amount: r1.base });

    c.request({ cat: 'vertify', act: 'token', callback: 't' });
    const t = await c.next((f) => f.method?.callback === 't');
    expect(t.type).to.equal('notice');
    const ok = verifyToken(t.msg.token, t.msg.issuer, Date.now());
    expect(ok.ok).to.equal(true);
    if (ok.ok) expect(ok.payload.account).to.equal(acc.address);
    const tampered = t.msg.token.replace(/.$/, (ch: string) => (ch === '0' ? '1' : '0'));
    expect(verifyToken(tampered, t.msg.issuer, Date.now()).ok).to.equal(false);
    expect(verifyToken(t.msg.token, acc.address, Date.now()).ok, 'another issuer').to.equal(false);
    await c.close();
  });

  it('paying in development as docs/protocol.md shows: the dev_transfer and dev_finalizeBlock JSON-RPC methods', async () => {
    srv = await start();
    const [acc] = newAccounts(1) as [Account];
    const c = await Client.connect(srv.url);
    await c.signIn(acc);
    const r = await reg(c, acc.address);
    const rpc = new WebSocket(node.url);
    const answers: Record<string, unknown>[] = [];
    await new Promise<void>((resolve, reject) => {
      rpc.once('error', reject);
      rpc.on('message', (m) => { answers.push(JSON.parse(String(m)) as Record<string, unknown>); if (answers.length === 2) resolve(); });
      rpc.once('open', () => {
        rpc.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'dev_transfer', params: [acc.address, target.address, r.base] }));
        rpc.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'dev_finalizeBlock', params: [] }));
      });
    });
    rpc.close();
    expect(answers[0]).to.deep.equal({ jsonrpc: '2.0', id: 1, result: true });
    expect(answers[1]).to.have.nested.property('result.number').that.is.a('number');
    expect(answers[1]).to.have.nested.property('result.hash').that.matches(/^0x[0-9a-f]{64}$/);
    const done = await c.next(isNotice('vertify', 'done'), 10_000);
    expect(done.msg.data).to.include({ account: acc.address, amount: r.base, done: true });
    await c.close();
  });

  it('a wrong amount gets the failure notice; reg for another account and token before verifying are refused', async () => {
    srv = await start();
    const [acc, other] = newAccounts(2) as [Account, Account];
    const c = await Client.connect(srv.url);
    await c.signIn(acc);
    const r = await reg(c, acc.address);
    node.addTransfer(acc.address, target.address, BigInt(r.base) + 1n);
    await node.finalizeBlock();
    const fail = await c.next(isNotice('vertify', 'done'), 10_000);
    expect(fail.msg.error).to.be.a('string');
    expect(fail.msg.data).to.equal(undefined);
    expect((await c.expectError({ cat: 'vertify', act: 'reg', account: other.address })).code).to.equal(44501);
    expect((await c.expectError({ cat: 'vertify', act: 'token' })).code).to.equal(44501);
    await c.close();
  });

  it('an expired registration does not verify', async () => {
    srv = await start(['--verify-ttl-ms', '1000']);
    const [acc] = newAccounts(1) as [Account];
    const c = await Client.connect(srv.url);
    await c.signIn(acc);
    const r = await reg(c, acc.address);
    await sleep(1300);
    node.addTransfer(acc.address, target.address, BigInt(r.base));
    await node.finalizeBlock();
    expect(await c.none(isNotice('vertify', 'done'), 1500)).to.have.length(0);
    await c.close();
  });

  it('a payment finalized while the watcher was disconnected is found after it reconnects', async () => {
    srv = await start();
    const [acc] = newAccounts(1) as [Account];
    const c = await Client.connect(srv.url);
    await c.signIn(acc);
    const r = await reg(c, acc.address);
    node.setRefuseConnections(true);
    node.dropConnections();
    node.addTransfer(acc.address, target.address, BigInt(r.base));
    await node.finalizeBlock();
    await node.finalizeBlock();
    await sleep(300);
    node.setRefuseConnections(false);
    const done = await c.next(isNotice('vertify', 'done'), 20_000);
    expect(done.msg.data).to.include({ account: acc.address, amount: r.base });
    await c.close();
  });

  it('a restart between reg and the payment still verifies, and the notice waits for the account', async () => {
    srv = await start();
    const [acc] = newAccounts(1) as [Account];
    let c = await Client.connect(srv.url);
    await c.signIn(acc);
    const r = await reg(c, acc.address);
    await c.close();
    const dataDir = srv.dataDir;
    await srv.kill('SIGKILL');
    // Paid while the server is down.
    node.addTransfer(acc.address, target.address, BigInt(r.base));
    await node.finalizeBlock();
    srv = await start([], dataDir);
    await sleep(1500);
    c = await Client.connect(srv.url);
    await c.signIn(acc);
    const done = await c.next(isNotice('vertify', 'done'), 20_000);
    expect(done.msg.data).to.include({ account: acc.address, amount: r.base });
    await c.close();
  });

  it('without a chain endpoint, reg answers that verification is not enabled', async () => {
    srv = await startServer([]);
    const [acc] = newAccounts(1) as [Account];
    const c = await Client.connect(srv.url);
    await c.signIn(acc);
    const e = await c.expectError({ cat: 'vertify', act: 'reg', account: acc.address });
    expect(e.code).to.equal(45010);
    c.request({ cat: 'chat', act: 'chat', to: acc.address, msg: 'still chatting' });
    await c.next((f) => f.type === 'message' && f.msg === 'still chatting');
    void isError;
    await c.close();
  });
});
