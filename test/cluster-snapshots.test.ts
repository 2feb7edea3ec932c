/**
 * Snapshots (src/cluster/snapshots.ts) on a real nats-server: a partition's records and the shared
 * state written to the object store and loaded into an empty store, what every snapshot covers,
 * the ledger trimmed below it, and damaged snapshots refused.
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import { DeliverPolicy, JetStreamApiError } from '@nats-io/jetstream';
import { Base64UrlPaddedCodec } from '@nats-io/obj';
import { headers } from '@nats-io/transport-node';
import pino from 'pino';
import { convPartition } from '../src/actors/address';
import { Engine } from '../src/cluster/engine';
import { SnapshotError, Snapshots, partitionObject } from '../src/cluster/snapshots';
import { MemoryStore } from '../src/store/memory/memory-store';
import { openStore } from '../src/store/open';
import { damagedState, type LogEntry, type Store } from '../src/store/ports';
import { natsAvailable, startNats, type NatsHandle } from './support/nats';
import { tempDir } from './support/server';

const P = 4;
const log = pino({ level: 'silent' });
const ENTRY = 2 ** 20;

/** Every record of every conversation of `store`, by conversation. */
function everything(store: Store): Map<string, LogEntry[]> {
  const out = new Map<string, LogEntry[]>();
  for (const conv of store.log.conversations(undefined, 1e6)) out.set(conv, store.log.read({ conv, limit: 1e6, direction: 'forward' }));
  return out;
}

/**
 * Records of 48 conversations (direct pairs, groups, own logs) over every partition, appended at
 * ledger-like offsets (unique in the store) out of order; one long conversation (more than a page
 * of the log), mids, server notices, an edited (redacted) record and a trimmed start.
 */
function fill(store: Store): void {
  const convs = Array.from({ length: 48 }, (_, i) => (i % 3 === 0 ? `d:a${i}:b${i}` : i % 3 === 1 ? `g:G${i}` : `a:acc${i}`));
  for (let seq = 200; seq >= 1; seq--) {
    convs.forEach((conv, i) => {
      if ((seq + i) % 7 !== 0 && i !== 4) return;
      for (let j = 0; j < (i === 4 ? 3 : 1); j++) {
        store.log.append({ conv, at: 1_700_000_000_000 + seq, from: i % 4 === 0 ? null : `u${i}`, ...(i % 2 === 1 ? { mid: `m${seq}` } : {}), head: `{"t":"msg","n":${seq},"to":`, tail: `,"c":"${conv}"` }, seq * ENTRY + i * 4 + j);
      }
    });
  }
  expect(store.log.redact('g:G4', 100 * ENTRY + 17, { head: '{"t":"deleted","to":', tail: '' })).to.equal(true);
  store.log.trimThrough('g:G4', 10 * ENTRY + 18);
}

describe('cluster snapshots', function () {
  this.timeout(20_000);
  let nats: NatsHandle;
  const engines: Engine[] = [];
  const dirs: string[] = [];
  let n = 0;

  before(async function () {
    if (!natsAvailable()) return this.skip();
    nats = await startNats();
  });
  after(async () => {
    for (const e of engines) await e.close();
    await nats?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** An engine of a cluster of its own (its own ledger and snapshots), and its snapshots. */
  async function cluster(partitions = P): Promise<{ engine: Engine; snapshots: Snapshots }> {
    const engine = await Engine.open({ url: nats.url, name: `snap${++n}`, replicas: 1, nodeTtlMs: 10_000, log });
    engines.push(engine);
    return { engine, snapshots: new Snapshots(engine, partitions, log) };
  }

  async function lmdbStore(): Promise<Store> {
    const dir = tempDir('imgc-snap-');
    dirs.push(dir);
    return openStore({ backend: 'lmdb', dir, fsync: 'off' });
  }

  it('a partition\'s snapshot holds its records only, and loads into an empty store at the same offsets, twice alike', async () => {
    const { snapshots } = await cluster();
    const source = new MemoryStore();
    fill(source);
    const all = everything(source);
    const partition = convPartition('g:G4', P);
    const mine = [...all].filter(([conv]) => convPartition(conv, P) === partition);
    expect(mine.length).to.be.within(3, all.size - 3);
    expect(all.get('g:G4')!.length).to.be.greaterThan(512);

    const written = await snapshots.writePartition(partition, 77, source);
    expect(written).to.include({ object: partitionObject(partition), seq: 77, count: mine.reduce((s, [, l]) => s + l.length, 0) });

    const target = await lmdbStore();
    try {
      expect(await snapshots.loadPartition(partition, target)).to.equal(77);
      expect([...everything(target)]).to.deep.equal(mine);
      expect(target.log.read({ conv: 'g:G4', after: 100 * ENTRY + 16, limit: 1, direction: 'forward' })[0]!.head).to.equal('{"t":"deleted","to":');
      expect(target.log.findMid('g:G5', 'u5', 'm199')).to.equal(source.log.findMid('g:G5', 'u5', 'm199'));
      expect(target.stats().lastOffset).to.equal(Math.max(...mine.flatMap(([, l]) => l.map((e) => e.offset))));
      const appended = target.stats().appended;
      expect(await snapshots.loadPartition(partition, target)).to.equal(77);
      expect(target.stats().appended).to.equal(appended);
      expect([...everything(target)]).to.deep.equal(mine);
      expect(await snapshots.loadPartition((partition + 1) % P, target)).to.equal(undefined);
    } finally {
      await target.close();
    }
  });

  it('the shared snapshot: every state but the node\'s own, and every membership, loaded into an empty store', async () => {
    const { snapshots } = await cluster();
    const source = new MemoryStore();
    for (let i = 0; i < 700; i++) source.states.put(`group:${i}`, { members: [`u${i}`], name: `g ${i}`, n: i });
    source.states.put('verify:book', [1, 'two', null]);
    source.states.put('cluster:applied', { epoch: 'e', seq: 9 });
    source.states.put('cluster:marks', { 0: 'live' });
    for (let i = 0; i < 600; i++) source.positions.join(`u${i % 250}`, `g:${i}`, i * ENTRY);
    source.positions.join('u1', 'd:u1:u2', 0);

    const written = await snapshots.writeShared(31, source);
    expect(written).to.include({ object: 'shared', seq: 31, count: 701 + 601 });
    const target = new MemoryStore();
    expect(await snapshots.loadShared(target)).to.equal(31);
    const shared = source.states.list('', undefined, 1e6).filter((a) => !a.startsWith('cluster:'));
    expect(target.states.list('', undefined, 1e6)).to.deep.equal(shared);
    for (const a of shared) expect(target.states.get(a)).to.deep.equal(source.states.get(a));
    expect(target.positions.allMemberships(undefined, 1e6)).to.deep.equal(source.positions.allMemberships(undefined, 1e6));

    // A state damaged in the writer's store is no state to hand on: nothing is written.
    const get = source.states.get.bind(source.states);
    (source.states as { get: (a: string) => unknown }).get = (a) => (a === 'group:5' ? damagedState(a) : get(a));
    let err: unknown;
    await snapshots.writeShared(40, source).catch((e: unknown) => { err = e; });
    expect(String(err)).to.match(/state group:5 is damaged/);
    expect(await snapshots.loadShared(new MemoryStore())).to.equal(31);
  });

  it('covered: the lowest sequence over shared and every partition, once each is there; a write never goes back', async () => {
    const { engine, snapshots } = await cluster();
    const empty = new MemoryStore();
    expect(await snapshots.covered()).to.equal(undefined);
    await snapshots.writeShared(50, empty);
    for (const [p, seq] of [[0, 40], [1, 45], [2, 48]] as const) expect(await snapshots.writePartition(p, seq, empty)).to.include({ seq, count: 0 });
    expect(await snapshots.covered()).to.equal(undefined);
    await snapshots.writePartition(3, 60, empty);
    expect(await snapshots.covered()).to.equal(40);
    // Snapshots cut with another number of partitions cover nothing here.
    expect(await new Snapshots(engine, P + 1, log).covered()).to.equal(undefined);

    // A write covering no more than the snapshot there is not written; one covering more is.
    expect(await snapshots.writePartition(0, 40, empty)).to.equal(undefined);
    expect(await snapshots.writePartition(0, 30, empty)).to.equal(undefined);
    expect(await snapshots.covered()).to.equal(40);
    await snapshots.writePartition(0, 70, empty);
    expect(await snapshots.covered()).to.equal(45);

    // Two writers at once: one replaces the object, the other finds it replaced and writes nothing.
    const big = new MemoryStore();
    fill(big);
    const p = convPartition('g:G4', P);
    const both = await Promise.all([snapshots.writePartition(p, 100, big), snapshots.writePartition(p, 101, big)]);
    expect(both.filter((w) => w !== undefined)).to.have.length(1);
    const target = new MemoryStore();
    expect(await snapshots.loadPartition(p, target)).to.equal(both.find((w) => w !== undefined)!.seq);
    expect(everything(target).get('g:G4')).to.deep.equal(everything(big).get('g:G4'));
  });

  it('trimLedger purges the entries below what every snapshot covers, no further; a consumer from the start begins after them', async () => {
    const { engine, snapshots } = await cluster();
    const stream = engine.names.stream;
    const config = (await engine.jsm.streams.info(stream)).config;
    expect(config.deny_delete).to.equal(true);
    expect(config.deny_purge ?? false).to.equal(false);
    for (let i = 1; i <= 20; i++) await engine.js.publish(engine.names.node('x'), JSON.stringify({ i }));
    const empty = new MemoryStore();
    let refused: unknown;
    await snapshots.trimLedger(5).catch((e: unknown) => { refused = e; });
    expect(refused).to.be.instanceOf(RangeError);
    await snapshots.writeShared(12, empty);
    for (let p = 0; p < P; p++) await snapshots.writePartition(p, 12 + p, empty);
    expect(await snapshots.covered()).to.equal(12);
    refused = undefined;
    await snapshots.trimLedger(14).catch((e: unknown) => { refused = e; });
    expect(String(refused)).to.match(/RangeError: .*through 12.*not below 14/);

    expect(await snapshots.trimLedger(13)).to.equal(12);
    expect(await snapshots.trimLedger(13)).to.equal(0);
    const state = (await engine.jsm.streams.info(stream)).state;
    expect(state).to.include({ first_seq: 13, last_seq: 20, messages: 8 });
    const consumer = await engine.js.consumers.get(stream, { filter_subjects: engine.names.ledgerAll, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 });
    const first = await consumer.next({ expires: 2000 });
    expect(first?.seq).to.equal(13);
    expect(first?.json()).to.deep.equal({ i: 13 });
    // Single entries still cannot be deleted.
    const denied = await engine.jsm.streams.deleteMessage(stream, 15).catch((e: unknown) => e);
    expect(denied).to.be.instanceOf(JetStreamApiError);
  });

  it('a damaged snapshot is refused with where and why: nothing of a bad line\'s chunk applied, what passed before stays; a good one loads after it', async () => {
    const { engine, snapshots } = await cluster();
    const conv = 'g:G4';
    const p = convPartition(conv, P);
    const other = Array.from({ length: 40 }, (_, i) => `g:H${i}`).find((c) => convPartition(c, P) !== p)!;
    const rec = (offset: number, c = conv): string => JSON.stringify({ conv: c, offset, at: 1, from: 'u', head: '{"to":', tail: '}' });
    const meta = { seq: '9', partitions: String(P), format: '1' };
    const put = (text: string | Buffer, metadata: Record<string, string> = meta): Promise<unknown> => engine.objects.putBlob({ name: partitionObject(p), metadata }, typeof text === 'string' ? new TextEncoder().encode(text) : text);
    /** The error loading `text` ends with; `applied`: lines that passed their checks (and were applied) before the end found it wrong. */
    const refusal = async (text: string | Buffer, opts: { metadata?: Record<string, string>; applied?: number } = {}): Promise<string> => {
      await put(text, opts.metadata);
      const store = new MemoryStore();
      const err = await snapshots.loadPartition(p, store).then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(SnapshotError);
      expect(store.stats().appended).to.equal(opts.applied ?? 0);
      expect(store.log.read({ conv, limit: 10, direction: 'forward' }).map((e) => e.offset)).to.deep.equal([1, 2].slice(0, opts.applied ?? 0));
      return (err as Error).message;
    };
    expect(await refusal(`${rec(1)}\n{"conv":\n${rec(3)}\n{"count":3}\n`)).to.match(/^snapshot p\.\d: line 2: not JSON: refused/);
    expect(await refusal(`${rec(1)}\n${JSON.stringify({ conv, offset: 2, at: 1, from: 'u', tail: '}' })}\n{"count":2}\n`)).to.match(/line 2: a record without/);
    expect(await refusal(`${rec(1)}\n${rec(2, other)}\n{"count":2}\n`)).to.match(/line 2: a record of g:H\d+, which is not of partition/);
    expect(await refusal(`${rec(1)}\n{"count":1}\n${rec(2)}\n`)).to.match(/line 3: a line after the count line/);
    expect(await refusal(`${rec(1)}\n{"address":"group:1","state":{}}\n{"count":2}\n`)).to.match(/line 2: a state in a partition's snapshot/);
    expect(await refusal(Buffer.concat([Buffer.from(`${rec(1)}\n"`), Buffer.from([0xc3, 0x28]), Buffer.from('"\n{"count":2}\n')]))).to.match(/not UTF-8 text/);
    // A bad line in the second chunk (of 128 KiB): the records of the first were applied, none after them.
    const long = (offset: number): string => JSON.stringify({ conv, offset, at: 1, from: 'u', head: `{"x":"${'y'.repeat(1000)}","to":`, tail: '}' });
    await put(`${Array.from({ length: 200 }, (_, i) => (i === 189 ? '{"conv":1}' : long(i + 1))).join('\n')}\n{"count":200}\n`);
    const half = new MemoryStore();
    expect(String(await snapshots.loadPartition(p, half).catch((e: unknown) => e))).to.match(/line 190: a record without .*: refused, nothing of its chunk applied; the lines applied before it was found stay/);
    const applied = half.log.read({ conv, limit: 1000, direction: 'forward' }).map((e) => e.offset);
    expect(applied.length).to.be.within(100, 130);
    expect(applied).to.deep.equal(Array.from({ length: applied.length }, (_, i) => i + 1));

    // Found at the end: the records before, whole and valid, were applied.
    expect(await refusal(`${rec(1)}\n${rec(2)}\n{"count":3}\n`, { applied: 2 })).to.match(/count line says 3 lines, it holds 2/);
    expect(await refusal(`${rec(1)}\n${rec(2)}\n`, { applied: 2 })).to.match(/ends without its count line after 2 lines/);
    expect(await refusal(`${rec(1)}\n{"count":1}`, { applied: 1 })).to.match(/last line is cut short/);
    expect(await refusal(`${rec(1)}\n{"count":1}\n`, { metadata: { ...meta, format: '0' } })).to.match(/metadata .* is not of format 1 with 4 partitions/);

    // Bytes changed under the digest: found once every chunk is read.
    await put(`${rec(1)}\n{"count":1}\n`);
    const bucket = engine.names.snapshotsBucket;
    const subject = `$O.${bucket}.M.${Base64UrlPaddedCodec.encode(partitionObject(p))}`;
    const info = (await engine.jsm.streams.getMessage(`OBJ_${bucket}`, { last_by_subj: subject }))!.json<Record<string, unknown>>();
    const h = headers();
    h.set('Nats-Rollup', 'sub');
    await engine.js.publish(subject, JSON.stringify({ ...info, digest: `SHA-256=${Buffer.alloc(32, 7).toString('base64url')}=` }), { headers: h });
    const err = await snapshots.loadPartition(p, new MemoryStore()).then(() => undefined, (e: unknown) => e);
    expect(String(err)).to.match(/SnapshotError: snapshot p\.\d: its bytes do not match its digest/);

    // A good snapshot written over it (it covers more) loads.
    const good = new MemoryStore();
    good.log.append({ conv, at: 1, from: 'u', head: '{"to":', tail: '}' }, 5 * ENTRY);
    expect(await snapshots.writePartition(p, 10, good)).to.include({ count: 1 });
    const store = new MemoryStore();
    expect(await snapshots.loadPartition(p, store)).to.equal(10);
    expect(everything(store)).to.deep.equal(everything(good));
  });
});
