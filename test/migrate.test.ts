/**
 * The v1 migration: a data directory written with the old journal-and-checkpoint code
 * (src/migrate/v1) is moved into the store on start, once, and served by the real server.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServer, tempDir } from './support/server';
import { Client, isMessage, sleep, type Frame } from './support/client';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { captureLogs, rm, tmpDir, type Captured } from './support/store-log';
import { useServerPerTest } from './support/suite';
import { PartitionStore } from '../src/migrate/v1/partition';
import { initDataDir, partitionDir, partitionOf } from '../src/migrate/v1/layout';
import type { InboxEvent, InboxState } from '../src/migrate/v1/inbox-state';
import { writeFileAtomicSync } from '../src/store/fsutil';
import { directTemplate, groupTemplate } from '../src/protocol/frames';
import { newGroupRecord, type GroupEvent, type GroupRecord } from '../src/actors/group-state';
import type { VerifierState } from '../src/actors/verifier';
import { migrateDataDir, MIGRATED_DIR, MIGRATION_MARKER, type MigrationMarker } from '../src/migrate/migrate';
import { openStore } from '../src/store/open';
import type { Store } from '../src/store/ports';

const P = 16;

type Entry = [string, unknown];

/**
 * Writes one v1 layout (`dir` with meta.json and pNN/) the way the old StorePersistence did: per
 * partition an optional checkpoint (address → state) and then journal records, each a batch of
 * `[address, event]`.
 */
async function writeV1(dir: string, snapshot: Record<string, unknown>, batches: Entry[][]): Promise<void> {
  initDataDir(dir, P);
  const parts = new Map<number, { snap: Record<string, unknown>; batches: Entry[][] }>();
  const part = (address: string) => {
    const p = partitionOf(address, P);
    let x = parts.get(p);
    if (!x) { x = { snap: {}, batches: [] }; parts.set(p, x); }
    return x;
  };
  for (const [address, state] of Object.entries(snapshot)) part(address).snap[address] = state;
  for (const batch of batches) {
    const byPart = new Map<number, Entry[]>();
    for (const e of batch) {
      const p = partitionOf(e[0], P);
      part(e[0]);
      byPart.set(p, [...(byPart.get(p) ?? []), e]);
    }
    for (const [p, list] of byPart) parts.get(p)!.batches.push(list);
  }
  for (const [p, x] of parts) {
    const { store } = await PartitionStore.open({ dir, partition: p, fsync: 'off' });
    if (Object.keys(x.snap).length > 0) await store.checkpoint(x.snap);
    for (const b of x.batches) store.append([b]);
    await store.close();
  }
}

function writeCold(dataDir: string, record: GroupRecord): void {
  const address = `group:${record.id}`;
  const dir = path.join(partitionDir(dataDir, partitionOf(address, P)), 'cold');
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomicSync(path.join(dir, `${encodeURIComponent(address)}.json`), JSON.stringify(record));
}

const directMsg = (from: string, i: number, seq: number, at: number): InboxEvent => {
  const t = directTemplate(from, JSON.stringify({ i }));
  return { e: 'msg', seq, at, keep: true, head: t.head, tail: t.tail };
};

interface Fixture {
  /** Group with a checkpoint and journal events after it: a, b, c (d left). */
  g1: string;
  /** Group created in the journal only: a, d. */
  g2: string;
  /** Group only in a cold file: a, b, c, d. */
  g3: string;
  /** Group created then destroyed in the journal. */
  g4: string;
  verifier: VerifierState;
}

/**
 * A full v1 data directory: groups (checkpoint + journal, journal only, cold only, destroyed), the
 * verifier's book, and inboxes: `away` keeps i = 2, 3, 4 (1 was drained, 5 went live), `acker`
 * acknowledges and keeps i = 12, 13 (11 acknowledged).
 */
async function writeFixture(dataDir: string, a: Account, b: Account, c: Account, d: Account, away: Account, acker: Account): Promise<Fixture> {
  const now = Date.now();
  const f: Fixture = {
    g1: 'GDmigrateOne', g2: 'GDmigrateTwo', g3: 'GDmigrateTre', g4: 'GDmigrateFor',
    verifier: {
      book: { v: 1, pending: {}, verified: { [a.address]: { account: a.address, amount: '1000', blockNumber: 7, blockHash: '0xab', eventIndex: 1, at: now } } },
      lastProcessed: 41,
    },
  };
  const ev = (id: string, e: GroupEvent): Entry => [`group:${id}`, e];
  await writeV1(dataDir, {
    [`group:${f.g1}`]: newGroupRecord(f.g1, [a.address, b.address, d.address], a.address, now - 10_000),
    'verify:book': f.verifier,
  }, [
    [ev(f.g1, { e: 'joined', account: c.address, at: now - 5000 })],
    [ev(f.g1, { e: 'left', account: d.address, manager: a.address, at: now - 4000 }), ev(f.g2, { e: 'created', record: newGroupRecord(f.g2, [a.address, d.address], a.address, now - 3000) })],
    [ev(f.g4, { e: 'created', record: newGroupRecord(f.g4, [a.address, b.address], a.address, now - 3000) })],
    [ev(f.g4, { e: 'destroyed', at: now - 2000 }), ['verify:book', { e: 'processed', block: 42 }]],
  ]);
  writeCold(dataDir, { ...newGroupRecord(f.g3, [a.address, b.address, c.address, d.address], a.address, now - 20_000), nick: 'cold one' });

  const awayState: InboxState = { seq: 2, acked: 0, ackMode: false, stored: [], dropped: 0 };
  for (const i of [1, 2]) {
    const m = directMsg(a.address, i, i, now - 1000 + i) as { head: string; tail: string; at: number };
    awayState.stored.push({ seq: i, at: m.at, head: m.head, tail: m.tail });
  }
  const inbox = (acc: Account, e: InboxEvent): Entry => [`inbox:${acc.address}`, e];
  await writeV1(path.join(dataDir, 'accounts'), { [`inbox:${away.address}`]: { ...awayState, recent: [] } }, [
    [inbox(away, { e: 'done', upTo: 1 })],
    [inbox(away, directMsg(a.address, 3, 3, now - 900)), inbox(acker, directMsg(b.address, 11, 1, now - 900))],
    [inbox(away, directMsg(a.address, 4, 4, now - 800)), inbox(acker, directMsg(b.address, 12, 2, now - 800))],
    [inbox(away, { e: 'msg', seq: 5, at: now - 700, keep: false }), inbox(acker, directMsg(b.address, 13, 3, now - 700))],
    [inbox(acker, { e: 'acked', upTo: 1 })],
  ]);
  return f;
}

const chats = (c: Client): number[] => c.log.filter(isMessage((f) => f.method?.cat === 'chat')).map((f) => (f.msg as { i: number }).i);

describe('migrate: v1 data directory into the store', function () {
  this.timeout(90_000);
  const ctx = useServerPerTest();
  let a: Account, b: Account, c: Account, d: Account, away: Account, acker: Account;

  before(() => { [a, b, c, d, away, acker] = newAccounts(6) as [Account, Account, Account, Account, Account, Account]; });

  it('a v1 directory is served by the real server after start: kept messages, groups, ack mode; once', async () => {
    const dataDir = tempDir();
    const quiet = captureLogs();
    const f = await writeFixture(dataDir, a, b, c, d, away, acker).finally(() => quiet.restore());
    ctx.srv = await startServer([], { dataDir, env: { IMGC_LOG_LEVEL: 'info' } });

    // The away account gets what it kept, in order, after `active`.
    const cw = await Client.connect(ctx.srv.url, { name: 'away' });
    await cw.signIn(away);
    const kept = await cw.nextN(3, isMessage((x) => x.method?.cat === 'chat'));
    expect(kept.map((x) => x.msg.i)).to.deep.equal([2, 3, 4]);
    expect(kept.every((x) => x.from === a.address && x.to === away.address)).to.equal(true);
    const seqs = kept.map((x) => x.seq as number);
    expect(seqs).to.deep.equal([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).to.equal(3);

    // The groups answer `detail` with their members (the destroyed one does not exist).
    const ca = await Client.connect(ctx.srv.url, { name: 'a' });
    await ca.signIn(a);
    const detail = async (id: string): Promise<Frame> => {
      ca.request({ cat: 'group', act: 'detail', id, callback: `d-${id}` });
      return ca.next((x) => x.method?.callback === `d-${id}` || x.request?.callback === `d-${id}`);
    };
    const d1 = await detail(f.g1);
    expect(d1.msg.group).to.have.members([a.address, b.address, c.address]);
    expect(d1.msg.manager).to.equal(a.address);
    expect((await detail(f.g2)).msg.group).to.have.members([a.address, d.address]);
    const d3 = await detail(f.g3);
    expect(d3.msg.group).to.have.members([a.address, b.address, c.address, d.address]);
    expect(d3.msg.nick).to.equal('cold one');
    expect((await detail(f.g4)).type).to.equal('error');

    // A member gets a new group message live.
    const cc = await Client.connect(ctx.srv.url, { name: 'c' });
    await cc.signIn(c);
    ca.request({ cat: 'group', act: 'chat', to: f.g1, msg: 'after the move' });
    const live = await cc.next(isMessage((x) => x.group === f.g1));
    expect(live.msg).to.equal('after the move');
    expect(live.from).to.equal(a.address);

    // The acknowledging account gets its two unacknowledged messages, and does not acknowledge them.
    const ck = await Client.connect(ctx.srv.url, { name: 'acker' });
    await ck.signIn(acker);
    expect((await ck.nextN(2, isMessage((x) => x.method?.cat === 'chat'))).map((x) => x.msg.i)).to.deep.equal([12, 13]);
    await sleep(400); // the delivered positions are written within 250 ms
    for (const cl of [cw, ca, cc, ck]) await cl.close();

    // The old files are under migrated-v1/.
    const moved = path.join(dataDir, MIGRATED_DIR);
    expect(fs.existsSync(path.join(dataDir, 'meta.json'))).to.equal(false);
    expect(fs.existsSync(path.join(dataDir, 'accounts'))).to.equal(false);
    expect(fs.readdirSync(dataDir).filter((n) => /^p\d+$/.test(n))).to.deep.equal([]);
    expect(fs.existsSync(path.join(moved, 'meta.json'))).to.equal(true);
    expect(fs.existsSync(path.join(moved, 'accounts', 'meta.json'))).to.equal(true);
    expect(fs.readdirSync(moved).filter((n) => /^p\d+$/.test(n))).to.have.length(P);
    expect(ctx.srv.output()).to.match(/v1 data directory migrated into the store/);

    // A second start: nothing migrates again, the away account gets nothing again, the acker
    // (ack mode kept) gets its unacknowledged messages again and stops getting them once it acks.
    await ctx.srv.stop({ keepData: true });
    ctx.srv = await startServer([], { dataDir, env: { IMGC_LOG_LEVEL: 'info' } });
    expect(ctx.srv.output()).to.not.match(/migrated into the store/);
    const again = await Client.connect(ctx.srv.url, { name: 'away again' });
    await again.signIn(away);
    await sleep(400);
    expect(chats(again)).to.deep.equal([]);
    const ck2 = await Client.connect(ctx.srv.url, { name: 'acker again' });
    await ck2.signIn(acker);
    const redo = await ck2.nextN(2, isMessage((x) => x.method?.cat === 'chat'));
    expect(redo.map((x) => x.msg.i)).to.deep.equal([12, 13]);
    ck2.request({ cat: 'chat', act: 'ack', seq: redo[1]!.seq });
    await sleep(300);
    await again.close();
    await ck2.close();
    const cd = await Client.connect(ctx.srv.url, { name: 'd' });
    await cd.signIn(d);
    cd.request({ cat: 'group', act: 'detail', id: f.g2, callback: 'd2' });
    expect((await cd.next((x) => x.method?.callback === 'd2')).msg.group).to.have.members([a.address, d.address]);
    await cd.close();

    await ctx.srv.stop({ keepData: true });
    ctx.srv = await startServer([], { dataDir });
    const ck3 = await Client.connect(ctx.srv.url, { name: 'acker third' });
    await ck3.signIn(acker);
    await sleep(400);
    expect(chats(ck3)).to.deep.equal([]);
    await ck3.close();
  });
});

describe('migrate: interrupted migration', function () {
  this.timeout(30_000);
  let dir: string;
  let logs: Captured;
  let store: Store | undefined;
  let a: Account, b: Account, c: Account, d: Account, away: Account, acker: Account;

  before(async () => {
    await accountsReady();
    [a, b, c, d, away, acker] = newAccounts(6) as [Account, Account, Account, Account, Account, Account];
  });
  beforeEach(() => { dir = tmpDir('migrate'); logs = captureLogs(); });
  afterEach(async () => { await store?.close(); store = undefined; logs.restore(); rm(dir); });

  const msgI = (e: { head: string; tail: string }): number => (JSON.parse(`${e.head}"x"${e.tail}}`) as { msg: { i: number } }).msg.i;
  const open = () => openStore({ backend: 'lmdb', dir, fsync: 'off' });
  const ownLog = (s: Store, acc: Account) => s.log.read({ conv: `a:${acc.address}`, limit: 100, direction: 'forward' });

  it('writes groups, memberships, the verifier, kept messages and positions through the ports', async () => {
    const f = await writeFixture(dir, a, b, c, d, away, acker);
    store = await open();
    const counts = await migrateDataDir(dir, store);
    expect(counts).to.deep.equal({ groups: 3, accounts: 2, messages: 5 });
    expect((store.states.get(`group:${f.g1}`) as GroupRecord).group).to.have.members([a.address, b.address, c.address]);
    expect(store.states.get(`group:${f.g4}`)).to.equal(undefined);
    expect(store.states.get('verify:book')).to.deep.equal({ ...f.verifier, lastProcessed: 42 });
    expect(store.positions.membership(c.address, `g:${f.g1}`)).to.deep.equal({ conv: `g:${f.g1}`, since: 1 });
    expect(store.positions.membership(d.address, `g:${f.g1}`)).to.equal(undefined);
    const w = ownLog(store, away);
    expect(w.map(msgI)).to.deep.equal([2, 3, 4]);
    expect(store.positions.get(away.address)).to.deep.equal({ delivered: w[0]!.offset - 1, acked: w[0]!.offset - 1, ackMode: false });
    const k = ownLog(store, acker);
    expect(k).to.have.length(2);
    expect(store.positions.get(acker.address)).to.deep.include({ delivered: k[0]!.offset - 1, ackMode: true });
    expect((store.states.get(MIGRATION_MARKER) as MigrationMarker).done).to.equal(true);
    expect(fs.existsSync(path.join(dir, MIGRATED_DIR, 'meta.json'))).to.equal(true);

    // Called again (the next start): nothing happens.
    expect(await migrateDataDir(dir, store)).to.equal(null);
    expect(ownLog(store, away)).to.have.length(3);
  });

  const restoreV1 = (copy: string): void => {
    fs.rmSync(path.join(dir, MIGRATED_DIR), { recursive: true });
    for (const n of fs.readdirSync(copy)) fs.cpSync(path.join(copy, n), path.join(dir, n), { recursive: true });
  };

  it('a run killed after writing everything to the store but before the rename does not duplicate on the next run', async () => {
    await writeFixture(dir, a, b, c, d, away, acker);
    const copy = tmpDir('migrate-copy');
    fs.cpSync(dir, copy, { recursive: true });
    store = await open();
    await migrateDataDir(dir, store);
    const first = { away: ownLog(store, away), acker: ownLog(store, acker), last: store.stats().lastOffset };
    // As if the process died after the data was flushed, before the marker said done and the files moved.
    const marker = store.states.get(MIGRATION_MARKER) as MigrationMarker;
    store.states.put(MIGRATION_MARKER, { done: false, since: marker.since });
    await store.close();
    store = undefined;
    restoreV1(copy);
    rm(copy);

    store = await open();
    expect(await migrateDataDir(dir, store)).to.deep.equal({ groups: 3, accounts: 2, messages: 5 });
    expect(ownLog(store, away)).to.deep.equal(first.away);
    expect(ownLog(store, acker)).to.deep.equal(first.acker);
    expect(store.stats().lastOffset).to.equal(first.last);
    expect(store.positions.get(away.address)!.delivered).to.equal(first.away[0]!.offset - 1);
    expect(logs.lines.some((l) => /interrupted/.test(String(l.msg)))).to.equal(true);
    expect(fs.existsSync(path.join(dir, 'meta.json'))).to.equal(false);
  });

  it('a run killed in the middle of the appends completes without duplicating what it had written', async () => {
    const f = await writeFixture(dir, a, b, c, d, away, acker);
    // What a first run had made durable: its marker, then the away account's first two messages.
    store = await open();
    const since = store.stats().lastOffset + 1;
    store.states.put(MIGRATION_MARKER, { done: false, since });
    await store.flush();
    const written = [2, 3].map((i) => {
      const t = directTemplate(a.address, JSON.stringify({ i }));
      return store!.log.append({ conv: `a:${away.address}`, at: Date.now(), from: null, head: t.head, tail: t.tail });
    });
    await store.flush();
    await store.close();

    store = await open();
    expect(await migrateDataDir(dir, store)).to.deep.equal({ groups: 3, accounts: 2, messages: 5 });
    const after = ownLog(store, away);
    expect(after.map(msgI)).to.deep.equal([2, 3, 4]);
    expect(after.slice(0, 2).map((e) => e.offset)).to.deep.equal(written.map((e) => e.offset));
    // Exactly the three are pending for it.
    expect(store.positions.get(away.address)).to.deep.equal({ delivered: written[0]!.offset - 1, acked: written[0]!.offset - 1, ackMode: false });
    expect(ownLog(store, acker).map(msgI)).to.deep.equal([12, 13]);
    expect(store.positions.membership(b.address, `g:${f.g1}`)).to.deep.equal({ conv: `g:${f.g1}`, since });
  });

  it('a run killed during the renames only finishes them', async () => {
    await writeFixture(dir, a, b, c, d, away, acker);
    store = await open();
    await migrateDataDir(dir, store);
    // Put meta.json and one partition back, as if the process died before moving them.
    fs.renameSync(path.join(dir, MIGRATED_DIR, 'meta.json'), path.join(dir, 'meta.json'));
    fs.renameSync(path.join(dir, MIGRATED_DIR, 'p15'), path.join(dir, 'p15'));
    const last = store.stats().lastOffset;
    expect(await migrateDataDir(dir, store)).to.deep.equal({ groups: 3, accounts: 2, messages: 5 });
    expect(store.stats().lastOffset).to.equal(last);
    expect(ownLog(store, away)).to.have.length(3);
    expect(fs.existsSync(path.join(dir, 'meta.json'))).to.equal(false);
    expect(fs.existsSync(path.join(dir, MIGRATED_DIR, 'p15'))).to.equal(true);
  });
});
