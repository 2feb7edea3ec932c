/**
 * The key-package directory on a real server over real WebSockets (`cat: "keys"`,
 * src/actors/key-packages.ts): what devices publish, other accounts claim, each one-time package
 * once, then the last resort; `except`; an account without devices gives nothing; `count` and
 * `remove`; bad input gets its codes; and the directory survives a SIGKILL: after a restart on the
 * same data directory the packages not yet claimed are claimable, the claimed ones never again.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { newAccounts, randomAddresses, type Account } from './support/accounts';
import { Client, type Frame } from './support/client';
import { ask } from './support/devices';
import { startServer } from './support/server';
import { useServer, useServerPerTest } from './support/suite';

const device = (): string => randomBytes(32).toString('hex');
/** A stand-in key package: opaque base64 of the size of a real one. */
const kp = (): string => randomBytes(300).toString('base64');
const kps = (n: number): string[] => Array.from({ length: n }, kp);

/** Answer of a request that must succeed: its `msg`. */
async function ok(c: Client, r: Frame): Promise<any> {
  const f = await ask(c, r);
  expect(f.type, JSON.stringify(f).slice(0, 300)).to.equal('notice');
  expect(f.method).to.include({ cat: 'keys', act: r.act });
  return f.msg;
}

/** The code of the error answering a request that must fail. */
async function refused(c: Client, r: Frame): Promise<number> {
  const f = await ask(c, r);
  expect(f.type, `${JSON.stringify(r).slice(0, 200)} got ${JSON.stringify(f).slice(0, 200)}`).to.equal('error');
  return f.code as number;
}

interface Claimed { account: string; device: string; kp: string; lastResort?: true }
const claim = async (c: Client, accounts: string[], except?: string[]): Promise<Claimed[]> =>
  ((await ok(c, { cat: 'keys', act: 'claim', accounts, ...(except && { except }) })) as { packages: Claimed[] }).packages;

describe('keys: the directory of key packages', function () {
  this.timeout(30_000);
  const ctx = useServer(['--workers', '1']);
  let alice: Account, bob: Account, carol: Account;
  beforeEach(() => { [alice, bob, carol] = newAccounts(3) as [Account, Account, Account]; });

  it('published packages are claimed by another account once each across claims, then the last resort', async () => {
    const a = await ctx.signedIn(alice, 'alice');
    const b = await ctx.signedIn(bob, 'bob');
    const [d1, d2] = [device(), device()];
    const [p1, p2] = [kps(2), kps(2)];
    const [lr1, lr2] = [kp(), kp()];
    expect(await ok(a, { cat: 'keys', act: 'publish', device: d1, packages: p1, lastResort: lr1 })).to.deep.equal({ device: d1, count: 2, lastResort: true });
    expect(await ok(a, { cat: 'keys', act: 'publish', device: d2, packages: p2, lastResort: lr2 })).to.deep.equal({ device: d2, count: 2, lastResort: true });

    const plain = randomAddresses(1)[0]!;
    const first = await claim(b, [alice.address, plain]);
    const second = await claim(b, [alice.address, plain]);
    const oneTime = [...first, ...second];
    expect(oneTime.every((p) => p.account === alice.address && p.lastResort === undefined), JSON.stringify(oneTime).slice(0, 300)).to.equal(true);
    expect(first.map((p) => [p.device, p.kp])).to.deep.equal([[d1, p1[0]], [d2, p2[0]]], 'the oldest of each device first');
    expect(second.map((p) => [p.device, p.kp])).to.deep.equal([[d1, p1[1]], [d2, p2[1]]]);
    expect(await claim(b, [alice.address])).to.deep.equal([
      { account: alice.address, device: d1, kp: lr1, lastResort: true },
      { account: alice.address, device: d2, kp: lr2, lastResort: true },
    ]);
    expect(await claim(b, [plain]), 'an account with no devices gives nothing').to.deep.equal([]);
    expect(await ok(a, { cat: 'keys', act: 'count' })).to.deep.equal({ devices: [{ device: d1, count: 0, lastResort: true }, { device: d2, count: 0, lastResort: true }] });
  });

  it('except leaves out the devices the claimer has; its own other devices are claimable', async () => {
    const a = await ctx.signedIn(alice, 'alice');
    const b = await ctx.signedIn(bob, 'bob');
    const [a1, a2, b1, b2] = [device(), device(), device(), device()];
    const [pa1, pa2, pb2] = [kp(), kp(), kp()];
    await ok(a, { cat: 'keys', act: 'publish', device: a1, packages: [pa1] });
    await ok(a, { cat: 'keys', act: 'publish', device: a2, packages: [pa2] });
    await ok(b, { cat: 'keys', act: 'publish', device: b1, packages: [kp()] });
    await ok(b, { cat: 'keys', act: 'publish', device: b2, packages: [pb2] });
    // Bob's device b1 adds Alice's devices but a1 (already in the group) and Bob's own other device.
    expect(await claim(b, [alice.address, bob.address], [a1, b1])).to.deep.equal([
      { account: alice.address, device: a2, kp: pa2 },
      { account: bob.address, device: b2, kp: pb2 },
    ]);
    expect(await claim(b, [alice.address])).to.deep.equal([{ account: alice.address, device: a1, kp: pa1 }], 'a1 kept its package');
  });

  it('count and remove: only the signed-in account\'s own devices', async () => {
    const a = await ctx.signedIn(alice, 'alice');
    const b = await ctx.signedIn(bob, 'bob');
    const [d1, d2] = [device(), device()];
    expect(await ok(a, { cat: 'keys', act: 'count' })).to.deep.equal({ devices: [] });
    await ok(a, { cat: 'keys', act: 'publish', device: d1, packages: kps(3) });
    await ok(a, { cat: 'keys', act: 'publish', device: d2, packages: [], lastResort: kp() });
    expect(await ok(a, { cat: 'keys', act: 'count' })).to.deep.equal({ devices: [{ device: d1, count: 3, lastResort: false }, { device: d2, count: 0, lastResort: true }] });
    expect(await ok(b, { cat: 'keys', act: 'count' }), 'another account sees its own').to.deep.equal({ devices: [] });
    expect(await ok(b, { cat: 'keys', act: 'remove', device: d1 }), 'nor removes another\'s').to.deep.equal({ device: d1, removed: false });
    expect(await ok(a, { cat: 'keys', act: 'remove', device: d1 })).to.deep.equal({ device: d1, removed: true });
    expect(await ok(a, { cat: 'keys', act: 'remove', device: d1 })).to.deep.equal({ device: d1, removed: false });
    expect(await ok(a, { cat: 'keys', act: 'count' })).to.deep.equal({ devices: [{ device: d2, count: 0, lastResort: true }] });
    expect((await claim(b, [alice.address])).map((p) => p.device)).to.deep.equal([d2]);
  });

  it('bounds: the oldest dropped past 16 per device, a 9th device refused until one is removed', async () => {
    const a = await ctx.signedIn(alice, 'alice');
    const b = await ctx.signedIn(bob, 'bob');
    const d = device();
    const first = kps(16);
    await ok(a, { cat: 'keys', act: 'publish', device: d, packages: first });
    expect(await ok(a, { cat: 'keys', act: 'publish', device: d, packages: kps(3) })).to.deep.equal({ device: d, count: 16, lastResort: false });
    expect((await claim(b, [alice.address]))[0]!.kp, 'the 3 oldest were dropped').to.equal(first[3]);
    const devices = [d, ...Array.from({ length: 7 }, device)];
    for (const x of devices.slice(1)) await ok(a, { cat: 'keys', act: 'publish', device: x, packages: [kp()] });
    const ninth = await ask(a, { cat: 'keys', act: 'publish', device: device(), packages: [kp()] });
    expect(ninth).to.include({ type: 'error', code: 44744 });
    expect(ninth.error).to.include('keys/remove');
    await ok(a, { cat: 'keys', act: 'remove', device: devices[4] });
    expect((await ok(a, { cat: 'keys', act: 'publish', device: device(), packages: [kp()] })).count).to.equal(1);
  });

  it('bad input gets its codes, and nothing before sign-in', async () => {
    const a = await ctx.signedIn(alice, 'alice');
    const d = device();
    const cases: Array<[Frame, number]> = [
      [{ act: 'publish', packages: [] }, 44001],
      [{ act: 'publish', device: d }, 44001],
      [{ act: 'publish', device: d.toUpperCase(), packages: [] }, 44744],
      [{ act: 'publish', device: d.slice(1), packages: [] }, 44744],
      [{ act: 'publish', device: d, packages: kps(17) }, 44744],
      [{ act: 'publish', device: d, packages: ['not base64!'] }, 44744],
      [{ act: 'publish', device: d, packages: ['A'.repeat(2049)] }, 44744],
      [{ act: 'publish', device: d, packages: [''] }, 44744],
      [{ act: 'publish', device: d, packages: 'QUJD' }, 44744],
      [{ act: 'publish', device: d, packages: [], lastResort: 'a-b_' }, 44744],
      [{ act: 'claim' }, 44001],
      [{ act: 'claim', accounts: [] }, 44744],
      [{ act: 'claim', accounts: randomAddresses(51) }, 44744],
      [{ act: 'claim', accounts: [bob.address, bob.address] }, 44744],
      [{ act: 'claim', accounts: [bob.address, 'x'.repeat(48)] }, 44009],
      [{ act: 'claim', accounts: [bob.address], except: Array(401).fill(d) }, 44744],
      [{ act: 'claim', accounts: [bob.address], except: ['abc'] }, 44744],
      [{ act: 'remove' }, 44001],
      [{ act: 'remove', device: 42 }, 44744],
      [{ act: 'rotate' }, 41400],
    ];
    const failures: string[] = [];
    for (const [r, code] of cases) {
      const got = await refused(a, { cat: 'keys', ...r });
      if (got !== code) failures.push(`${JSON.stringify(r).slice(0, 80)}: expected ${code}, got ${got}`);
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
    expect(await ok(a, { cat: 'keys', act: 'count' }), 'nothing was stored').to.deep.equal({ devices: [] });
    const anon = await ctx.connect('anonymous');
    expect(await refused(anon, { cat: 'keys', act: 'count' })).to.equal(44003);
    expect(await refused(anon, { cat: 'keys', act: 'claim', accounts: [carol.address] })).to.equal(44003);
  });
});

describe('keys: the directory survives a SIGKILL', function () {
  this.timeout(60_000);
  const ctx = useServerPerTest();

  it('after a restart on the same data directory, what was not claimed is claimable and what was is not', async () => {
    const [alice, bob] = newAccounts(2) as [Account, Account];
    ctx.srv = await startServer(['--workers', '1']);
    let a = await Client.connect(ctx.srv.url, { name: 'alice' });
    await a.signIn(alice);
    let b = await Client.connect(ctx.srv.url, { name: 'bob' });
    await b.signIn(bob);
    const d = device();
    const packages = kps(3);
    const lr = kp();
    await ok(a, { cat: 'keys', act: 'publish', device: d, packages, lastResort: lr });
    expect((await claim(b, [alice.address])).map((p) => p.kp)).to.deep.equal([packages[0]]);
    expect((await ctx.srv.kill('SIGKILL')).signal).to.equal('SIGKILL');

    ctx.srv = await startServer(['--workers', '1'], { dataDir: ctx.srv.dataDir });
    a = await Client.connect(ctx.srv.url, { name: 'alice2' });
    await a.signIn(alice);
    b = await Client.connect(ctx.srv.url, { name: 'bob2' });
    await b.signIn(bob);
    try {
      expect(await ok(a, { cat: 'keys', act: 'count' })).to.deep.equal({ devices: [{ device: d, count: 2, lastResort: true }] });
      expect((await claim(b, [alice.address])).map((p) => p.kp)).to.deep.equal([packages[1]]);
      expect((await claim(b, [alice.address])).map((p) => p.kp)).to.deep.equal([packages[2]]);
      expect(await claim(b, [alice.address])).to.deep.equal([{ account: alice.address, device: d, kp: lr, lastResort: true }]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
