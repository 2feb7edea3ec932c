/**
 * The decisions of cluster mode that need no server: where a partition places, how a turn splits
 * into entries, how positions and revocation lists merge, which node a connection id names, and
 * which ledger entries are refused as unreadable.
 */
import { expect } from 'chai';
import { chunkOps, decodeEntry, encodeChunk, encodeEntry, ENTRY_BYTES, takeChunk, type Op } from '../src/cluster/entry';
import { connIdBase, nodeOfConn } from '../src/cluster/links';
import { placeOf } from '../src/cluster/ownership';
import { mergePositions } from '../src/cluster/positions';
import { clusterNames } from '../src/cluster/names';
import { mergeRevoked } from '../src/net/sessions';
import { ConfigError, loadSettings } from '../src/config';
import { silenced } from '../src/cluster/replay';

describe('cluster: placement, entries, merges', () => {
  it('placeOf: the same answer everywhere, spread over the nodes, and a joining node takes partitions only for itself', () => {
    const nodes = ['a1', 'b2', 'c3'];
    const before = Array.from({ length: 64 }, (_, p) => placeOf(p, nodes));
    expect(Array.from({ length: 64 }, (_, p) => placeOf(p, [...nodes].reverse()))).to.deep.equal(before);
    for (const n of nodes) expect(before.filter((x) => x === n).length).to.be.within(10, 34);
    const after = Array.from({ length: 64 }, (_, p) => placeOf(p, [...nodes, 'd4']));
    for (let p = 0; p < 64; p++) if (after[p] !== before[p]) expect(after[p]).to.equal('d4');
    expect(after.filter((x) => x === 'd4').length).to.be.greaterThan(0);
    // A node leaving: only its partitions move.
    const gone = Array.from({ length: 64 }, (_, p) => placeOf(p, ['a1', 'c3']));
    for (let p = 0; p < 64; p++) if (before[p] !== 'b2') expect(gone[p]).to.equal(before[p]);
    expect(placeOf(0, [])).to.equal(undefined);
  });

  it('chunkOps keeps order, never splits an op, and stays under ENTRY_BYTES', () => {
    const big = 'x'.repeat(200 * 1024);
    const ops: Op[] = Array.from({ length: 9 }, (_, i) => ({ t: 'reply', conn: i, frame: big }));
    const chunks = chunkOps(ops);
    expect(chunks.flatMap((c) => c.ops)).to.deep.equal(ops);
    for (const c of chunks) expect(encodeChunk('n', 1, 1, c).byteLength).to.be.below(ENTRY_BYTES + 1024);
    expect(chunks.length).to.be.greaterThan(1);
    expect(chunkOps([])).to.deep.equal([]);
    // The first chunk alone, without serializing the rest; an entry of a chunk decodes to its ops.
    expect(takeChunk(ops).ops).to.deep.equal(chunks[0]!.ops);
    expect(decodeEntry(encodeChunk('n1', 5, 7, chunks[1]!))).to.deep.equal({ node: 'n1', at: 5, id: 7, ops: chunks[1]!.ops });
  });

  it('decodeEntry round-trips and refuses what is not an entry', () => {
    const e = { node: 'n1', at: 1, ops: [{ t: 'claim' as const, partition: 3, node: 'n1' }] };
    expect(decodeEntry(encodeEntry(e))).to.deep.equal(e);
    for (const bad of ['{}', '[]', '{"node":1,"at":1,"ops":[]}', '{"node":"n","ops":[]}', 'null']) {
      expect(() => decodeEntry(Buffer.from(bad))).to.throw();
    }
  });

  it('mergePositions takes the furthest of each offset; ack mode once either has it', () => {
    expect(mergePositions({ delivered: 5, acked: 1, ackMode: false }, { delivered: 3, acked: 4, ackMode: true })).to.deep.equal({ delivered: 5, acked: 4, ackMode: true });
    expect(mergePositions(undefined, { delivered: 1, acked: 0, ackMode: false })).to.deep.equal({ delivered: 1, acked: 0, ackMode: false });
    expect(mergePositions(undefined, undefined)).to.equal(undefined);
  });

  it('mergeRevoked keeps every revocation of both lists, each for the later time', () => {
    const m = mergeRevoked({ v: 1, ids: { x: 10 }, accounts: { A: 5 } }, { v: 1, ids: { x: 7, y: 3 }, accounts: { A: 9, B: 1 } });
    expect(m).to.deep.equal({ v: 1, ids: { x: 10, y: 3 }, accounts: { A: 9, B: 1 } });
    expect(mergeRevoked(undefined, 'junk')).to.deep.equal({ v: 1, ids: {}, accounts: {} });
  });

  it('a connection id names its node', () => {
    const n = 123_456;
    const id = connIdBase(n) + 42;
    expect(Number.isSafeInteger(connIdBase(2 ** 20 - 1) + 2 ** 32 - 1)).to.equal(true);
    expect(nodeOfConn(id)).to.equal(n.toString(36));
  });

  it('cluster names are checked and keep clusters apart', () => {
    expect(() => clusterNames('a.b')).to.throw();
    expect(() => clusterNames('')).to.throw();
    const a = clusterNames('one');
    const b = clusterNames('two');
    expect(a.stream).to.not.equal(b.stream);
    expect(a.partition(1)).to.equal('imgc.one.ledger.p.1');
    expect(a.node('x')).to.match(/^imgc\.one\.ledger\./);
  });

  it('settings: --cluster takes nats:// or tls:// URLs (or IMGC_CLUSTER), a checked name, and no --import-legacy', () => {
    expect(loadSettings(['--cluster', 'nats://10.0.0.5:4222,nats://10.0.0.6:4222'], {}).cluster).to.equal('nats://10.0.0.5:4222,nats://10.0.0.6:4222');
    expect(loadSettings([], { IMGC_CLUSTER: 'nats://h:4222', IMGC_CLUSTER_NAME: 'prod' })).to.include({ cluster: 'nats://h:4222', clusterName: 'prod' });
    expect(loadSettings([], {}).cluster).to.equal(undefined);
    expect(() => loadSettings(['--cluster', 'http://h:4222'], {})).to.throw(ConfigError, /cluster/);
    expect(() => loadSettings(['--cluster-name', 'a.b'], {})).to.throw(ConfigError, /cluster-name/);
    expect(() => loadSettings(['--cluster', 'nats://h:1', '--import-legacy', 'f'], {})).to.throw(ConfigError, /import-legacy/);
  });

  it('silenced: an entry its requesters were told failed keeps its changes, loses its answers', () => {
    const post = { t: 'post' as const, conv: 'd:a:b', tpl: { head: 'h', tail: 't' }, from: 'a', to: ['b'], ackTo: { conn: 9, frame: 'ok' } };
    const e = silenced({ node: 'n', at: 1, ops: [
      { t: 'post', post, at: 1 },
      { t: 'reply', conn: 9, frame: 'answer' },
      { t: 'change', change: { ok: true, act: 'delete', conv: 'd:a:b', original: { conv: 'd:a:b', offset: 3, at: 1, from: 'a', head: 'h', tail: 't' }, post, answer: { with: 'b', seq: 3 } }, conn: 9, at: 1 },
      { t: 'state', state: { t: 'state', address: 'group:x', state: { id: 'x' } } },
    ] });
    expect(e.ops.map((o) => o.t)).to.deep.equal(['post', 'change', 'state']);
    expect((e.ops[0] as { post: object }).post).to.not.have.property('ackTo');
    expect((e.ops[1] as { conn: number }).conn).to.equal(0);
  });
});
