/**
 * The live instruments of /metrics (prom-client) against the real service: after a signed sign-in
 * and a few messages with `mid`, the sign-in, delivery latency and store flush histograms have
 * counted them; a request before sign-in counts under imgc_errors_total{code="44003"}; prom-client's
 * default process and Node figures are there with the imgc_ prefix.
 */
import { expect } from 'chai';
import { accountsReady, newAccount } from './support/accounts';
import { Client, isError, isNotice } from './support/client';
import { startServer, statusFetch, type ServerHandle } from './support/server';

/** The value of the sample `name` (with exactly `labels`, as written), or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    const sp = line.lastIndexOf(' ');
    if (sp > 0 && line.slice(0, sp) === `${name}${labels}`) return Number(line.slice(sp + 1));
  }
  return undefined;
}

describe('status: live instruments in /metrics (histograms, errors by code, process figures)', function () {
  this.timeout(60_000);
  let srv: ServerHandle;
  const clients: Client[] = [];

  before(async () => {
    await accountsReady();
    srv = await startServer(['--auth', 'signed'], { status: true });
  });
  after(async () => {
    for (const c of clients) await c.close();
    await srv.stop();
  });

  async function metrics(): Promise<string> {
    const res = await statusFetch(srv, '/metrics', { signal: AbortSignal.timeout(5000) });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    return res.text();
  }

  it('counts a signed sign-in, acknowledged messages and their store turns; an error before sign-in by its code', async () => {
    const before = await metrics();
    // Histograms without labels are there from the start, at zero before any message.
    const flushes = sample(before, 'imgc_store_flush_seconds_count');
    expect(flushes).to.be.a('number');
    expect(sample(before, 'imgc_delivery_latency_seconds_count')).to.equal(0);
    expect(sample(before, 'imgc_signin_seconds_count', '{method="sig"}')).to.equal(undefined);
    expect(sample(before, 'imgc_errors_total', '{code="44003"}')).to.equal(undefined);
    expect(before).to.match(/^# TYPE imgc_process_cpu_seconds_total counter$/m);
    expect(before).to.match(/^# TYPE imgc_nodejs_eventloop_lag_seconds gauge$/m);

    // A request before sign-in: 44003.
    const early = await Client.connect(srv.url, { name: 'early' });
    clients.push(early);
    const err = await early.expectError({ act: 'chat', to: newAccount().address, msg: 'too soon' });
    expect(err.code).to.equal(44003);

    const alice = newAccount();
    const bob = newAccount();
    const a = await Client.connect(srv.url, { name: 'alice' });
    const b = await Client.connect(srv.url, { name: 'bob' });
    clients.push(a, b);
    await a.signIn(alice, { signed: true });
    await b.signIn(bob, { signed: true });
    const n = 4;
    for (let i = 0; i < n; i++) a.request({ act: 'chat', to: bob.address, msg: `m${i}`, mid: `mid-${i}` });
    await a.nextN(n, isNotice('chat', 'chat'), 10_000, 'chat acknowledgements');
    await b.nextN(n, (f) => f.type === 'message', 10_000, 'messages to bob');
    expect(a.queue.filter(isError())).to.deep.equal([]);

    const after = await metrics();
    expect(sample(after, 'imgc_signin_seconds_count', '{method="sig"}')).to.equal(2);
    expect(sample(after, 'imgc_signin_seconds_sum', '{method="sig"}')).to.be.above(0);
    expect(sample(after, 'imgc_delivery_latency_seconds_count')).to.equal(n);
    expect(sample(after, 'imgc_delivery_latency_seconds_bucket', '{le="+Inf"}')).to.equal(n);
    expect(sample(after, 'imgc_delivery_latency_seconds_sum')).to.be.above(0);
    // One observation per delivery turn that wrote: at least one, at most one per message.
    expect(sample(after, 'imgc_store_flush_seconds_count')! - flushes!).to.be.within(1, n);
    expect(sample(after, 'imgc_errors_total', '{code="44003"}')).to.equal(1);
    // The snapshot's figures are still there beside the instruments.
    expect(sample(after, 'imgc_connections')).to.equal(3);
    expect(sample(after, 'imgc_signins_total', '{method="sig"}')).to.equal(2);
  });
});
