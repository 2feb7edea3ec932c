/**
 * What a ledger entry concerns (src/cluster/interest.ts): stated by its publisher from its
 * operations, carried in a line before the entry, and judged by each reader before decoding it.
 */
import { expect } from 'chai';
import { AccountSet, MAX_LISTED } from '../src/account-hashes';
import { convPartition } from '../src/actors/address';
import type { Post } from '../src/actors/envelopes';
import type { Op } from '../src/carrier/ops';
import { decodeEntry, encodeChunk, encodeEntry, splitEntry, takeChunk } from '../src/cluster/entry';
import { concerns, decodeInterest, encodeInterest, interestOf, type Interest, type Reader } from '../src/cluster/interest';
import { connIdBase } from '../src/cluster/links';
import { accountConv } from '../src/store/ports';

const P = 8;
const ctx = (fresh = false): { partitions: number; fresh: () => boolean } => ({ partitions: P, fresh: () => fresh });
const conn = (node: number, k: number): number => connIdBase(node) + k;
const direct = (from: string, to: string, ackConn?: number): Op => {
  const post: Post = { t: 'post', conv: `d:${[from, to].sort().join('|')}`, tpl: { head: '{"msg":"x","to":', tail: '' }, from, to: [to] };
  if (ackConn !== undefined) post.ackTo = { conn: ackConn, frame: '{}' };
  return { t: 'post', post, at: 1 };
};
const reader = (over: Partial<Reader> & { accounts?: string[] } = {}): Reader => {
  const here = new AccountSet();
  for (const a of over.accounts ?? []) here.add(a);
  return {
    self: over.self ?? 'zz',
    keeps: over.keeps ?? (() => false),
    mayHold: over.mayHold ?? ((accounts) => here.holdsAny(accounts)),
  };
};

describe('cluster: what an entry concerns', () => {
  it('a direct message concerns the pair\'s keeper, the acknowledged sender\'s node, and nodes where either account is', () => {
    const op = direct('5Alice', '5Bob', conn(7, 3));
    const i = interestOf('a1', 5, [op], ctx());
    expect(i).to.include({ node: 'a1', id: 5, all: false, records: 1 });
    expect(i.parts).to.deep.equal([convPartition((op as { post: Post }).post.conv as string, P)]);
    expect(i.nodes).to.deep.equal([(7).toString(36)]);
    expect(concerns(i, reader()), 'a node with none of it').to.equal(false);
    expect(concerns(i, reader({ accounts: ['5Bob'] })), 'the recipient here').to.equal(true);
    expect(concerns(i, reader({ accounts: ['5Alice'] })), 'the sender here (own-device sync)').to.equal(true);
    expect(concerns(i, reader({ self: '7' })), 'the node answering the sender').to.equal(true);
    expect(concerns(i, reader({ keeps: (p) => i.parts.includes(p) })), 'the keeper').to.equal(true);
    expect(concerns(i, reader({ self: 'a1' })), 'its own publisher').to.equal(true);
  });

  it('a direct conversation\'s first record concerns every node (it makes the pair members everywhere)', () => {
    expect(interestOf('a1', 1, [direct('5Alice', '5Bob')], ctx(true)).all).to.equal(true);
    expect(interestOf('a1', 1, [direct('5Alice', '5Bob')], ctx(false)).all).to.equal(false);
  });

  it('states, memberships, claims, trims and imports concern every node; answers only the connection\'s node', () => {
    const everyone: Op[] = [
      { t: 'state', state: { t: 'state', address: 'group:g', state: {} } as never },
      { t: 'join', account: '5A', conv: 'g:g', since: 1 },
      { t: 'claim', partition: 1, node: 'x' },
      { t: 'trim', conv: 'g:g', upTo: 9 },
      { t: 'append', entry: { conv: 'g:g', at: 1, from: '5A', head: '', tail: '' } },
    ];
    for (const op of everyone) expect(interestOf('a', 1, [op], ctx()).all, op.t).to.equal(true);
    const reply = interestOf('a', 1, [{ t: 'reply', conn: conn(9, 1), frame: '{}' }], ctx());
    expect(reply).to.include({ all: false, records: 0 });
    expect(reply.nodes).to.deep.equal(['9']);
    expect(concerns(reply, reader())).to.equal(false);
  });

  it('a notice to accounts numbers one record per recipient, in each one\'s own log\'s partition', () => {
    const to = ['5A', '5B', '5C'];
    const i = interestOf('a', 1, [{ t: 'post', post: { t: 'post', conv: 'own', tpl: { head: '', tail: '' }, from: null, to }, at: 1 }], ctx());
    expect(i.records).to.equal(3);
    expect(i.parts.sort()).to.deep.equal([...new Set(to.map((a) => convPartition(accountConv(a), P)))].sort());
  });

  it('an entry writing to more accounts than a line lists is for any node holding a socket', () => {
    const to = Array.from({ length: MAX_LISTED + 10 }, (_, k) => `5Member${k}`);
    const i = interestOf('a', 1, [{ t: 'post', post: { t: 'post', conv: 'g:G', tpl: { head: '', tail: '' }, from: '5Member0', to }, at: 1 }], ctx());
    expect(i.accounts).to.equal('any');
    expect(decodeInterest(encodeInterest(i))!.accounts).to.equal('any');
    expect(concerns(i, reader()), 'no socket here').to.equal(false);
    expect(concerns(i, reader({ accounts: ['5Someone'] })), 'a socket of anyone').to.equal(true);
  });

  it('an entry touching more partitions than a line lists concerns every node', () => {
    const many = Array.from({ length: 200 }, (_, k) => `5Acc${k}`);
    const i = interestOf('a', 1, [{ t: 'post', post: { t: 'post', conv: 'own', tpl: { head: '', tail: '' }, from: null, to: many }, at: 1 }], { partitions: 1024, fresh: () => false });
    expect(i.all).to.equal(true);
  });

  it('the line goes before the entry\'s JSON: found by the reader alone, and the entry decodes as one without it', () => {
    const ops = [direct('5Alice', '5Bob', conn(3, 1))];
    const line = encodeInterest(interestOf('a1', 7, ops, ctx()));
    const withLine = encodeChunk('a1', 123, 7, takeChunk(ops), line);
    const without = encodeChunk('a1', 123, 7, takeChunk(ops));
    expect(splitEntry(withLine).line).to.equal(line);
    expect(splitEntry(without).line).to.equal(undefined);
    expect(splitEntry(encodeEntry({ node: 'x', at: 1, ops: [] })).line, 'a claim or a restored entry').to.equal(undefined);
    expect(decodeEntry(withLine)).to.deep.equal(decodeEntry(without));
    expect(decodeEntry(withLine).ops).to.deep.equal(JSON.parse(JSON.stringify(ops)));
  });

  it('the line: there and back; a malformed one is no line (the entry is read)', () => {
    const i = interestOf('a1', 42, [direct('5Alice', '5Bob', conn(3, 1)), direct('5Carol', '5Dan')], ctx());
    const back = decodeInterest(encodeInterest(i)) as Interest;
    const plain = (x: Interest): unknown => ({ ...x, accounts: x.accounts === 'any' ? 'any' : [...x.accounts] });
    expect(plain(back)).to.deep.equal(plain(i));
    expect((i.accounts as Int32Array).length, 'four accounts').to.equal(4);
    for (const bad of [undefined, '', 'x;y', encodeInterest(i).replace(';42;', ';-1;'), encodeInterest(i).slice(0, -1), `${encodeInterest(i)};`]) {
      expect(decodeInterest(bad), String(bad)).to.equal(undefined);
    }
  });
});
