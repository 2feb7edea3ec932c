/**
 * Sign-in limits against the real server: the handshake deadline closes an idle unsigned socket
 * with code 4008 and counts it (in /status and /metrics), and spares a signed-in one; a full
 * sign-in queue answers 45003 with a retry-after hint to some of a burst of signed sign-ins, every
 * one gets an answer, nothing is left waiting, and the refused get in when they retry.
 */
import { expect } from 'chai';
import { accountsReady, newAccounts, signSpam } from './support/accounts';
import { Client, ClientPool, isNotice, sleep, type Frame } from './support/client';
import { getStatus, startServer, statusFetch, type ServerHandle } from './support/server';

interface SignInStatus { signIn: { handshakeTimeouts: number; failures: Record<string, number>; byMethod: Record<string, number>; queue: { waiting: number; max: number; refusedFull: number } } }

async function metrics(srv: ServerHandle): Promise<string> {
  const res = await statusFetch(srv, '/metrics');
  return res.text();
}

describe('sign-in: handshake deadline and queue bound', function () {
  this.timeout(90_000);
  const clients = new ClientPool();
  const servers: ServerHandle[] = [];
  const start = async (args: string[]) => {
    const s = await startServer(['--auth', 'signed', ...args], { status: true });
    servers.push(s);
    return s;
  };

  before(() => accountsReady());
  afterEach(() => clients.closeAll());
  after(async () => { for (const s of servers) await s.stop(); });

  it('an idle unsigned socket is closed with 4008 at --handshake-ms and counted; a signed-in one stays', async () => {
    const srv = await start(['--handshake-ms', '600']);
    const [alice] = newAccounts(1);
    const t0 = Date.now();
    const idle = await clients.connect(srv.url, 'idle');
    const active = await clients.connect(srv.url, 'active');
    await active.signIn(alice!, { signed: true });
    const closed = await idle.closed;
    const ms = Date.now() - t0;
    expect(closed.code).to.equal(4008);
    expect(closed.reason).to.match(/not signed in within 600 ms/);
    expect(ms, 'closed at the deadline').to.be.within(500, 4000);
    await sleep(800);
    expect(active.open, 'the signed-in socket is still open').to.equal(true);
    const st = await getStatus<SignInStatus>(srv);
    expect(st.signIn.handshakeTimeouts).to.equal(1);
    expect(await metrics(srv)).to.match(/^imgc_handshake_timeouts_total 1$/m);
  });

  it('a socket that keeps failing to sign in is closed at the deadline too', async () => {
    const srv = await start(['--handshake-ms', '700']);
    const [alice, mallory] = newAccounts(2);
    const c = await clients.connect(srv.url);
    const until = Date.now() + 3000;
    while (c.open && Date.now() < until) {
      c.request({ act: 'active', acc: alice!.address, sig: signSpam(mallory!.pair, c.spam) });
      await sleep(100);
    }
    expect((await c.closed).code).to.equal(4008);
    expect((await getStatus<SignInStatus>(srv)).signIn.handshakeTimeouts).to.equal(1);
  });

  it('the default deadline leaves a client ample time (no close within 1.5 s)', async () => {
    const srv = await start([]);
    const c = await clients.connect(srv.url);
    await sleep(1500);
    expect(c.open).to.equal(true);
    expect((await getStatus<SignInStatus>(srv)).signIn.handshakeTimeouts).to.equal(0);
  });

  it('a full sign-in queue answers 45003 with retryAfterMs to some, every sign-in is answered, none piles up', async () => {
    const srv = await start(['--signin-queue', '2', '--signin-threads', '1']);
    const N = 60;
    const accounts = newAccounts(N);
    const cs = await Promise.all(accounts.map((_, i) => Client.connect(srv.url, { name: `c${i}` })));
    try {
      // All at once, as after a restart.
      for (let i = 0; i < N; i++) cs[i]!.request({ act: 'active', acc: accounts[i]!.address, sig: signSpam(accounts[i]!.pair, cs[i]!.spam) });
      const answers: Frame[] = await Promise.all(cs.map((c) => c.next((f) => isNotice('chat', 'active')(f) || (f.type === 'error' && f.method?.act === 'active'), 15_000, 'the answer to active')));
      const busy = answers.filter((f) => f.type === 'error');
      const welcomed = answers.filter((f) => f.type === 'notice');
      expect(busy.length, 'refused with 45003').to.be.greaterThan(0);
      expect(welcomed.length, 'signed in').to.be.at.least(2);
      for (const e of busy) {
        expect(e.code).to.equal(45003);
        expect(e.retryAfterMs).to.be.a('number').within(100, 10_000);
        expect(e.error).to.match(/retry/);
      }
      const st = await getStatus<SignInStatus>(srv);
      expect(st.signIn.queue).to.deep.include({ waiting: 0, max: 2, refusedFull: busy.length });
      expect(st.signIn.failures['queue-full']).to.equal(busy.length);
      expect(st.signIn.byMethod.sig).to.equal(welcomed.length);
      // The refused get in when they retry, a few at a time.
      const refused = cs.filter((_, i) => answers[i]!.type === 'error');
      for (const c of refused) {
        const i = cs.indexOf(c);
        expect((await c.signIn(accounts[i]!, { signed: true })).msg).to.equal('Welcome');
      }
      expect((await getStatus<SignInStatus>(srv)).signIn.byMethod.sig).to.equal(N);
    } finally {
      await Promise.all(cs.map((c) => c.close()));
    }
  });
});
