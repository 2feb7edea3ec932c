/**
 * The decisions of the SDK's end-to-end layer, each alone: records cut in parts and put together
 * (in order, bounded, nothing from a broken sequence), the ring of kept texts (bounded, found by
 * ciphertext), the vouch (the account's signature over this device key, and no other), and the
 * directory's check of a listed package (its account, its device, its vouch).
 */
import { expect } from 'chai';
import { authService, credentialOf, newDevice, vouched } from '../src/client/e2e/device';
import { claim } from '../src/client/e2e/directory';
import { E2E_TAG, isEnvelope, isPart, MAX_PARTS, Parts, split, type Envelope, type Part } from '../src/client/e2e/envelope';
import { Keyring } from '../src/client/e2e/keyring';
import { encodeKeyPackage, generateKeyPackageWithKey, capabilities, lifetime, suite } from '../src/client/e2e/mls';
import { polkadotVerify } from '../src/client/e2e/polkadot-verify';
import { Plaintexts } from '../src/client/e2e/plaintexts';
import { MemoryStorage } from '../src/client/e2e/storage';
import { signFn } from '../src/client/signer';
import type { NoticeFrame, Request } from '../src/client/types';
import { accountsReady, newAccount } from './support/accounts';

describe('client e2e: records in parts', () => {
  const env: Envelope = { e2e: E2E_TAG, g: 'Zw==', w: 'x'.repeat(250), m: 'bQ==' };

  it('a small record is one post; a large one parts that put it back together in order', () => {
    expect(split(env, 'id1')).to.deep.equal([env]);
    const parts = split(env, 'id1', 100) as Part[];
    expect(parts.length).to.equal(3);
    expect(parts.every(isPart)).to.equal(true);
    const p = new Parts();
    expect(p.add('a', 'c', parts[0]!)).to.equal(undefined);
    expect(p.add('a', 'c', parts[1]!)).to.equal(undefined);
    expect(p.add('a', 'c', parts[2]!)).to.deep.equal(env);
  });

  it('a part out of order drops the record; other senders and conversations are kept apart', () => {
    const parts = split(env, 'id2', 100) as Part[];
    const p = new Parts();
    p.add('a', 'c', parts[0]!);
    expect(p.add('b', 'c', parts[1]!), 'another sender').to.equal(undefined);
    expect(p.add('a', 'other', parts[1]!), 'another conversation').to.equal(undefined);
    expect(p.add('a', 'c', parts[2]!), 'part 1 missing').to.equal(undefined);
    expect(p.add('a', 'c', parts[1]!)).to.equal(undefined);
  });

  it('refuses a record of more than MAX_PARTS parts, and parts that claim more', () => {
    expect(() => split({ ...env, w: 'x'.repeat(MAX_PARTS * 10) }, 'big', 10)).to.throw(RangeError);
    expect(isPart({ e2e: E2E_TAG, part: 'x', i: 0, n: MAX_PARTS + 1, d: '' })).to.equal(false);
    expect(isPart({ e2e: E2E_TAG, part: 'x', i: 2, n: 2, d: '' })).to.equal(false);
    expect(isEnvelope({ e2e: E2E_TAG, g: 1 })).to.equal(false);
    expect(isEnvelope('text')).to.equal(false);
  });
});

describe('client e2e: kept texts', () => {
  it('finds a text by its ciphertext, keeps the newest `slots` only, and reloads from storage', async () => {
    const cs = await suite();
    const storage = new MemoryStorage();
    const t = new Plaintexts(storage, 3);
    for (const i of [1, 2, 3, 4]) await t.put(`c${i}`, { n: i }, cs);
    expect(await t.get('c1', cs), 'the oldest is gone').to.equal(undefined);
    expect(await t.get('c4', cs)).to.deep.equal({ msg: { n: 4 } });
    expect(storage.keys('pt:').length).to.equal(3);
    const again = new Plaintexts(storage, 3);
    expect(await again.get('c2', cs)).to.deep.equal({ msg: { n: 2 } });
    await again.put('c5', 5, cs);
    expect(await again.get('c2', cs), 'the ring goes on where it stopped').to.equal(undefined);
    expect(await again.get('c3', cs)).to.deep.equal({ msg: { n: 3 } });
  });
});

describe('client e2e: vouches and the directory\'s packages', () => {
  before(() => accountsReady());

  it('a vouch holds for its account and device only', async () => {
    const cs = await suite();
    const [alice, mallory] = [newAccount(), newAccount()];
    const d = await newDevice(alice.address, signFn(alice.pair), cs);
    const other = await cs.signature.keygen();
    expect(await vouched(credentialOf(d), d.publicKey, polkadotVerify)).to.equal(true);
    expect(await vouched(credentialOf(d), other.publicKey, polkadotVerify), 'another device key').to.equal(false);
    expect(await vouched(credentialOf({ account: mallory.address, vouch: d.vouch }), d.publicKey, polkadotVerify), 'another account').to.equal(false);
    expect(await vouched({ credentialType: 'basic', identity: new TextEncoder().encode('not json') }, d.publicKey, polkadotVerify)).to.equal(false);
  });

  it('claim keeps only packages that are what they are listed as', async () => {
    const cs = await suite();
    const [alice, bob] = [newAccount(), newAccount()];
    const ring = await Keyring.open(new MemoryStorage(), alice.address, signFn(alice.pair), cs);
    const [good] = await ring.generate(1);
    const forgedDevice = await cs.signature.keygen();
    const forged = await generateKeyPackageWithKey(credentialOf({ account: alice.address, vouch: ring.device.vouch }), capabilities(), lifetime, [], forgedDevice, cs);
    const listed = [
      { account: alice.address, device: ring.device.id, kp: good },
      { account: bob.address, device: ring.device.id, kp: good },
      { account: alice.address, device: 'ab'.repeat(32), kp: good },
      { account: alice.address, device: Buffer.from(forgedDevice.publicKey).toString('hex'), kp: encodeKeyPackage(forged.publicPackage) },
      { account: alice.address, device: ring.device.id, kp: 'bm90IGEga2V5IHBhY2thZ2U=' },
    ];
    const asked: Request[] = [];
    const host = { account: bob.address, request: async (f: Request) => { asked.push(f); return { msg: { packages: listed } } as unknown as NoticeFrame; } };
    const r = await claim(host, [alice.address, bob.address], [{ account: alice.address, device: 'cd'.repeat(32) }], authService(polkadotVerify));
    expect(r.ok.map((c) => [c.account, c.device])).to.deep.equal([[alice.address, ring.device.id]]);
    expect(r.refused.map((x) => x.why)).to.deep.equal([
      'its credential names another account', 'it is another device\'s', 'its vouch is not the account\'s signature', 'not a key package',
    ]);
    expect(asked[0]).to.deep.include({ cat: 'keys', act: 'claim', except: ['cd'.repeat(32)] });
  });

  it('a used package is retired and found no more once 64 newer ones were used; the last resort stays', async () => {
    const cs = await suite();
    const alice = newAccount();
    const storage = new MemoryStorage();
    const ring = await Keyring.open(storage, alice.address, signFn(alice.pair), cs);
    await ring.generate(66);
    await ring.generate(1, true);
    const refs = storage.keys('kp:').map((k) => k.slice(3));
    const lastResort = refs.find((r) => JSON.parse(storage.get(`kp:${r}`)!).lastResort)!;
    const oneTime = refs.filter((r) => r !== lastResort);
    for (const r of [...oneTime, lastResort]) ring.used(r);
    expect(storage.keys('kp:').length).to.equal(64 + 1);
    expect(ring.hasLastResort()).to.equal(true);
    const again = await Keyring.open(storage, alice.address, signFn(alice.pair), cs);
    expect(again.device.id, 'the device is kept').to.equal(ring.device.id);
  });
});
