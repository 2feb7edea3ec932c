/**
 * End-to-end encryption in the SDK (src/client/e2e) against the real server: encrypted direct and
 * group messages read by their recipients and by no one else (not the data directory, a backup, the
 * debug log or /status); a member removed from a group cannot read what follows; a tampered record
 * and a device key without the account's vouch are refused with typed errors; a W3OS client keeps
 * talking in plaintext, shown as such; offline delivery and history across a server restart.
 */
import { expect } from 'chai';
import { ImgcClient, ImgcError, ClientCode, polkadotVerify, type MessageFrame } from '../src/client/index';
import { credentialOf } from '../src/client/e2e/device';
import { Keyring } from '../src/client/e2e/keyring';
import { capabilities, encodeKeyPackage, generateKeyPackageWithKey, hex, lifetime, suite } from '../src/client/e2e/mls';
import { MemoryStorage } from '../src/client/e2e/storage';
import { signFn } from '../src/client/signer';
import { accountsReady, newAccount, type Account } from './support/accounts';
import { Client, isMessage, sleep, until } from './support/client';
import { foundIn } from './support/files';
import { getStatus, startServer, statusFetch, tempDir, type ServerHandle } from './support/server';


interface Peer { c: ImgcClient; got: MessageFrame[]; raw: MessageFrame[] }

function peerOf(url: string, account: Account, extra: Partial<ConstructorParameters<typeof ImgcClient>[0]> = {}): Peer {
  const c = new ImgcClient({ url, signer: account.pair, reconnect: { initialMs: 50, maxMs: 500 }, ...extra });
  const got: MessageFrame[] = [];
  const raw: MessageFrame[] = [];
  c.on('message', (m) => got.push(m));
  c.on('frame', (f) => { if ((f as { type?: string }).type === 'message') raw.push(f as MessageFrame); });
  return { c, got, raw };
}

/** Connected, with its key packages on the server. */
async function online(p: Peer): Promise<Peer> {
  await p.c.connect();
  await until('key packages published', () => p.c.e2e?.device !== undefined);
  await p.c.e2e!.topUp();
  return p;
}

describe('client SDK: end-to-end encryption', function () {
  this.timeout(120_000);
  let srv: ServerHandle;
  const open: ImgcClient[] = [];
  const track = (p: Peer): Peer => { open.push(p.c); return p; };

  before(async () => {
    await accountsReady();
    srv = await startServer(['--auth', 'signed'], { status: true, env: { IMGC_LOG_LEVEL: 'debug' } });
  });
  after(async () => { await srv?.stop(); });
  afterEach(() => { for (const c of open.splice(0)) c.close(); });

  it('a direct message is read by its recipient and appears nowhere on the server', async () => {
    const [alice, bob, w3os] = [newAccount(), newAccount(), newAccount()];
    const a = track(await online(peerOf(srv.url, alice)));
    const b = track(await online(peerOf(srv.url, bob)));
    const secret = `secret-direct-${Date.now()}`;
    const r = await a.c.send(bob.address, { text: secret });
    expect(r.encrypted).to.equal(true);
    await until('bob reads it', () => b.got.some((m) => (m.msg as { text?: string } | null)?.text === secret));
    const m = b.got.find((x) => (x.msg as { text?: string } | null)?.text === secret)!;
    expect(m.e2e).to.deep.equal({ encrypted: true });
    expect(m.from).to.equal(alice.address);
    expect(JSON.stringify(b.raw), 'the wire carries ciphertext only').to.not.include(secret);
    // A W3OS client without keys: plaintext, shown as such (and it proves the search below finds text).
    const plain = `plain-to-w3os-${Date.now()}`;
    const legacy = await Client.connect(srv.url);
    await legacy.signIn(w3os, { signed: true });
    const p = await a.c.send(w3os.address, plain);
    expect(p.encrypted).to.equal(false);
    const seen = await legacy.next(isMessage((f) => f.msg === plain));
    expect(seen.from).to.equal(alice.address);
    legacy.send({ act: 'chat', to: alice.address, msg: 'plain reply', spam: legacy.spam });
    await until('the reply', () => a.got.some((x) => x.msg === 'plain reply'));
    expect(a.got.find((x) => x.msg === 'plain reply')!.e2e).to.deep.equal({ encrypted: false });
    legacy.close();
    // Nowhere on the server: the data directory (after a flush), a backup, the debug log, /status.
    const dest = tempDir('imgc-e2e-backup-');
    const res = await statusFetch(srv, `/backup?dest=${encodeURIComponent(dest)}`, { method: 'POST' });
    expect(res.status).to.equal(200);
    expect(foundIn(dest, plain), 'the plaintext control is in the backup').to.equal(true);
    expect(foundIn(dest, secret), 'the secret is not in the backup').to.equal(false);
    expect(foundIn(srv.dataDir, secret)).to.equal(false);
    expect(srv.output(), 'the log is at debug level').to.include('"level":20').and.not.include(secret);
    expect(JSON.stringify(await getStatus(srv))).to.not.include(secret);
  });

  it('a group: members read, a removed member cannot read what follows', async () => {
    const [alice, bob, carol] = [newAccount(), newAccount(), newAccount()];
    const a = track(await online(peerOf(srv.url, alice)));
    const b = track(await online(peerOf(srv.url, bob)));
    const c = track(await online(peerOf(srv.url, carol)));
    const gid = await a.c.group.create([bob.address, carol.address]);
    const first = `group-first-${Date.now()}`;
    expect((await a.c.group.chat(gid, first)).encrypted).to.equal(true);
    await until('bob and carol read it', () => [b, c].every((p) => p.got.some((m) => m.msg === first && m.e2e?.encrypted === true)));
    await a.c.group.deport(gid, carol.address);
    const after = `group-after-${Date.now()}`;
    await a.c.group.chat(gid, after);
    await until('bob reads the next', () => b.got.some((m) => m.msg === after));
    const record = b.raw.at(-1)!;
    expect(JSON.stringify(record)).to.not.include(after);
    // Carol gets the record anyway (as if the server leaked it): her device cannot read it.
    const leaked = await c.c.e2e!.open({ ...record });
    expect(leaked.kind).to.equal('message');
    const info = (leaked as { e2e: { encrypted: boolean; error?: ImgcError } }).e2e;
    expect(info.error).to.be.instanceOf(ImgcError);
    expect(info.error!.code).to.equal(ClientCode.E2E_UNREADABLE);
    expect(c.got.some((m) => m.msg === after)).to.equal(false);
    expect(foundIn(srv.dataDir, first) || foundIn(srv.dataDir, after)).to.equal(false);
    const dest = tempDir('imgc-e2e-backup-');
    expect((await statusFetch(srv, `/backup?dest=${encodeURIComponent(dest)}`, { method: 'POST' })).status).to.equal(200);
    expect(foundIn(dest, first) || foundIn(dest, after), 'not in a backup').to.equal(false);
    expect(srv.output()).to.not.include(first).and.not.include(after);
  });

  it('a member added later gets a Welcome with the next message, and reads from there on', async () => {
    const [alice, bob, dave] = [newAccount(), newAccount(), newAccount()];
    const a = track(await online(peerOf(srv.url, alice)));
    const b = track(await online(peerOf(srv.url, bob)));
    const d = track(await online(peerOf(srv.url, dave)));
    const gid = await a.c.group.create([bob.address]);
    await a.c.group.chat(gid, 'before dave');
    await a.c.group.join(gid, dave.address);
    await a.c.group.chat(gid, 'dave is in');
    await until('dave reads the next', () => d.got.some((m) => m.msg === 'dave is in' && m.e2e?.encrypted === true));
    expect(d.got.some((m) => m.msg === 'before dave')).to.equal(false);
    expect(b.got.filter((m) => m.e2e?.encrypted).map((m) => m.msg)).to.deep.equal(['before dave', 'dave is in']);
  });

  it('an account\'s second device reads what is sent to the account', async () => {
    const [alice, bob] = [newAccount(), newAccount()];
    const phone = track(await online(peerOf(srv.url, alice)));
    const laptop = track(await online(peerOf(srv.url, alice)));
    expect(phone.c.e2e!.device).to.not.equal(laptop.c.e2e!.device);
    const b = track(await online(peerOf(srv.url, bob)));
    await b.c.send(alice.address, 'to both devices');
    await until('both read it', () => [phone, laptop].every((p) => p.got.some((m) => m.msg === 'to both devices' && m.e2e?.encrypted === true)));
  });

  it('a lost device removed by another of its account reads nothing sent after', async () => {
    const [alice, bob] = [newAccount(), newAccount()];
    const phone = track(await online(peerOf(srv.url, alice)));
    const lost = track(await online(peerOf(srv.url, alice)));
    const b = track(await online(peerOf(srv.url, bob, { e2e: { verify: polkadotVerify, devicesTtlMs: 0 } })));
    await b.c.send(alice.address, 'before the loss');
    await until('both read it', () => [phone, lost].every((p) => p.got.some((m) => m.msg === 'before the loss')));
    expect(await phone.c.e2e!.removeDevice(lost.c.e2e!.device!)).to.equal(true);
    await b.c.send(alice.address, 'after the loss');
    await until('the phone reads it', () => phone.got.some((m) => m.msg === 'after the loss'));
    await until('the lost device gets the record', () => lost.got.length === 2);
    expect(lost.got[1]!.msg).to.equal(null);
    expect(lost.got[1]!.e2e!.error!.code).to.equal(ClientCode.E2E_UNREADABLE);
  });

  it('a group with a W3OS member goes in plaintext, shown as such; an encrypted conversation never falls back to it', async () => {
    const [alice, bob, w3os] = [newAccount(), newAccount(), newAccount()];
    const a = track(await online(peerOf(srv.url, alice, { e2e: { verify: polkadotVerify, devicesTtlMs: 0 } })));
    const b = track(await online(peerOf(srv.url, bob)));
    const legacy = await Client.connect(srv.url);
    await legacy.signIn(w3os, { signed: true });
    const gid = await a.c.group.create([bob.address, w3os.address]);
    expect((await a.c.group.chat(gid, 'for everyone')).encrypted).to.equal(false);
    await legacy.next(isMessage((f) => f.msg === 'for everyone'));
    await until('bob reads it, marked plain', () => b.got.some((m) => m.msg === 'for everyone' && m.e2e?.encrypted === false));
    await legacy.close();
    // Encrypted with bob; then bob's only device disappears from the directory: no plaintext.
    expect((await a.c.send(bob.address, 'sealed')).encrypted).to.equal(true);
    await b.c.request({ cat: 'keys', act: 'remove', device: b.c.e2e!.device }, false);
    const err = await a.c.send(bob.address, 'must not leak').then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(ImgcError);
    expect((err as ImgcError).code).to.equal(ClientCode.E2E_NOT_ENCRYPTED);
    await sleep(300);
    expect(b.raw.some((f) => JSON.stringify(f).includes('must not leak'))).to.equal(false);
  });

  it('a group whose Welcome is larger than a frame: sent in parts, read whole', async () => {
    const [alice, bob] = [newAccount(), newAccount()];
    const a = track(await online(peerOf(srv.url, alice)));
    const b = track(await online(peerOf(srv.url, bob)));
    // 70 more members with device keys, published straight to the directory.
    const cs = await suite();
    const others = Array.from({ length: 70 }, () => newAccount());
    await Promise.all(others.map(async (o) => {
      const ring = await Keyring.open(new MemoryStorage(), o.address, signFn(o.pair), cs);
      const raw = await Client.connect(srv.url);
      await raw.signIn(o, { signed: true });
      raw.request({ cat: 'keys', act: 'publish', device: ring.device.id, packages: await ring.generate(1), callback: 'p' });
      const answer = await raw.next((f) => f.method?.callback === 'p' || f.request?.callback === 'p');
      expect(answer.type).to.equal('notice');
      await raw.close();
    }));
    const gid = await a.c.group.create([bob.address, ...others.map((o) => o.address)]);
    await a.c.group.chat(gid, 'to seventy-two');
    await until('bob reads it', () => b.got.some((m) => m.msg === 'to seventy-two' && m.e2e?.encrypted === true), 30_000);
    const parts = b.raw.filter((f) => (f.msg as { part?: string } | null)?.part !== undefined);
    expect(parts.length, 'the record came in parts').to.be.greaterThan(1);
    expect(b.got.length, 'parts are not shown').to.equal(1);
  });

  it('a tampered record is shown as unreadable, never as text', async () => {
    const [alice, bob] = [newAccount(), newAccount()];
    const a = track(await online(peerOf(srv.url, alice)));
    const b = track(await online(peerOf(srv.url, bob)));
    await a.c.send(bob.address, 'genuine');
    await until('the genuine one', () => b.got.some((m) => m.msg === 'genuine'));
    // Alice's next record, with one byte of its ciphertext changed, posted as it is.
    const [env] = (await a.c.e2e!.seal({ with: bob.address }, 'tampered'))! as Array<{ m: string }>;
    const bytes = Buffer.from(env!.m, 'base64');
    bytes[bytes.length - 5] ^= 1;
    await a.c.request({ cat: 'chat', act: 'chat', to: bob.address, msg: { ...env, m: bytes.toString('base64') }, mid: `t${Date.now()}` }, true);
    await until('the tampered one', () => b.got.some((m) => m.e2e?.error !== undefined));
    const bad = b.got.find((m) => m.e2e?.error !== undefined)!;
    expect(bad.msg).to.equal(null);
    expect(bad.e2e!.encrypted).to.equal(true);
    expect(bad.e2e!.error!.code).to.equal(ClientCode.E2E_UNREADABLE);
  });

  it('a device key without its account\'s vouch is refused: nothing is sent', async () => {
    const [alice, mallory, other] = [newAccount(), newAccount(), newAccount()];
    const a = track(await online(peerOf(srv.url, alice)));
    // Mallory (or a server) lists a device under mallory's account, vouched by another key.
    const m = track(peerOf(srv.url, mallory, { e2e: false }));
    await m.c.connect();
    const cs = await suite();
    const keys = await cs.signature.keygen();
    const forged = `0x${hex(other.pair.sign(new TextEncoder().encode('anything')))}`;
    const kp = await generateKeyPackageWithKey(credentialOf({ account: mallory.address, vouch: forged }), capabilities(), lifetime, [], keys, cs);
    await m.c.request({ cat: 'keys', act: 'publish', device: hex(keys.publicKey), packages: [encodeKeyPackage(kp.publicPackage)] }, true);
    const err = await a.c.send(mallory.address, 'for mallory').then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(ImgcError);
    expect((err as ImgcError).code).to.equal(ClientCode.E2E_BAD_VOUCH);
    expect((err as ImgcError).message).to.match(/vouch/);
  });

  it('offline delivery and history of encrypted messages across a server restart', async () => {
    const [alice, bob] = [newAccount(), newAccount()];
    const a = track(await online(peerOf(srv.url, alice)));
    // Bob's device keeps its state in one storage across two clients (as the CLI's file does across runs).
    const storage = new MemoryStorage();
    const b0 = await online(peerOf(srv.url, bob, { e2e: { storage, verify: polkadotVerify } }));
    b0.c.close();
    const texts = ['one', 'two', 'three'].map((t) => `${t}-${Date.now()}`);
    for (const t of texts) await a.c.send(bob.address, t);
    const keep = srv;
    await keep.stop({ keepData: true });
    srv = await startServer(['--auth', 'signed', '--port', String(keep.port)], { dataDir: keep.dataDir, status: true, env: { IMGC_LOG_LEVEL: 'debug' } });
    const b = track(peerOf(srv.url, bob, { e2e: { storage, verify: polkadotVerify } }));
    await b.c.connect();
    await until('the backlog read', () => texts.every((t) => b.got.some((m) => m.msg === t && m.e2e?.encrypted === true)));
    const history: unknown[] = [];
    for await (const m of b.c.history({ with: alice.address, direction: 'forward' })) history.push(m.msg);
    expect(history).to.deep.equal(texts);
    // Alice reads her own sends in history too (kept as she sent them).
    await a.c.ready();
    const own: unknown[] = [];
    for await (const m of a.c.history({ with: bob.address, direction: 'forward' })) own.push(m.msg);
    expect(own).to.deep.equal(texts);
  });
});

describe('client SDK: end-to-end encryption with a cut backlog', function () {
  this.timeout(60_000);
  let srv: ServerHandle;
  before(async () => {
    await accountsReady();
    srv = await startServer(['--auth', 'signed', '--group-backlog', '3']);
  });
  after(async () => { await srv?.stop(); });

  it('a group change among the records left out of the backlog is read first: the newer messages decrypt', async () => {
    const [alice, bob, carol] = [newAccount(), newAccount(), newAccount()];
    const a = await online(peerOf(srv.url, alice));
    const c = await online(peerOf(srv.url, carol));
    const storage = new MemoryStorage();
    const b0 = await online(peerOf(srv.url, bob, { e2e: { storage, verify: polkadotVerify } }));
    try {
      const gid = await a.c.group.create([bob.address]);
      await a.c.group.chat(gid, 'before');
      await until('bob reads it', () => b0.got.some((m) => m.msg === 'before'));
      const lastSeq = b0.c.highestSeq;
      b0.c.close();
      // While bob is away: carol is added (a commit in alice's group), then more than the backlog holds.
      await a.c.group.join(gid, carol.address);
      const later = Array.from({ length: 6 }, (_, i) => `later-${i}`);
      for (const t of later) await a.c.group.chat(gid, t);
      const b = peerOf(srv.url, bob, { e2e: { storage, verify: polkadotVerify }, lastSeq });
      const limited: unknown[] = [];
      b.c.on('limited', (l) => limited.push(l));
      await b.c.connect();
      try {
        await until('the newest three', () => later.slice(3).every((t) => b.got.some((m) => m.msg === t)));
        expect(limited.length, 'the backlog was cut').to.equal(1);
        expect(b.got.filter((m) => m.e2e?.error).map((m) => m.e2e!.error!.message)).to.deep.equal([]);
        expect(b.got.map((m) => m.msg)).to.deep.equal(later.slice(3));
        // The records left out were read on the way: history shows them.
        const h: unknown[] = [];
        for await (const m of b.c.history({ group: gid, direction: 'forward' })) if (m.type === 'message') h.push(m.msg);
        expect(h).to.deep.equal(['before', ...later]);
      } finally { b.c.close(); }
    } finally { a.c.close(); c.c.close(); }
  });
});
