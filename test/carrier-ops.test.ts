/**
 * Decided output as operations (src/carrier/ops.ts) and the one applier that carries them out
 * (src/carrier/applier.ts), against a fake target that records what it is asked to do.
 */
import { expect } from 'chai';
import type { Post, Reply, StateOut } from '../src/actors/envelopes';
import { Applier, type ApplyTarget } from '../src/carrier/applier';
import { routeDecided } from '../src/carrier/ops';
import { Code } from '../src/protocol/codes';
import { eventTemplate, noticeFrame, STORAGE_FULL_TEXT } from '../src/protocol/frames';
import type { NewEntry } from '../src/store/ports';

const NOW = 1234;

const post = (n: number, part?: number): Post => ({ t: 'post', conv: `g:${n}`, tpl: eventTemplate('x', n), from: 'A', to: ['B'], ...(part === undefined ? {} : { part }) });
const state = (n: number, part?: number): StateOut => ({ t: 'state', address: `group:${n}`, state: { n }, ...(part === undefined ? {} : { part }) });
const reply = (conn: number, part?: number): Reply => ({ t: 'reply', conn, frame: `f${conn}`, ...(part === undefined ? {} : { part }) });

describe('carrier: routeDecided', () => {
  it('groups output by partition (none: -1), keeping the order within each route', () => {
    const { routes, immediate } = routeDecided([post(1, 2), state(2), post(3, 2), state(4, 0), state(5), post(6, 2)], NOW);
    expect(routes).to.deep.equal([
      { part: 2, ops: [{ t: 'post', post: post(1, 2), at: NOW }, { t: 'post', post: post(3, 2), at: NOW }, { t: 'post', post: post(6, 2), at: NOW }] },
      { part: -1, ops: [{ t: 'state', state: state(2) }, { t: 'state', state: state(5) }] },
      { part: 0, ops: [{ t: 'state', state: state(4, 0) }] },
    ]);
    expect(immediate).to.deep.equal([]);
  });

  it('makes an answer in a route that changes something a reply op, in its place', () => {
    const { routes, immediate } = routeDecided([reply(1, 3), post(1, 3), reply(2, 3), reply(3), state(9)], NOW);
    expect(routes).to.deep.equal([
      { part: 3, ops: [{ t: 'reply', conn: 1, frame: 'f1' }, { t: 'post', post: post(1, 3), at: NOW }, { t: 'reply', conn: 2, frame: 'f2' }] },
      { part: -1, ops: [{ t: 'reply', conn: 3, frame: 'f3' }, { t: 'state', state: state(9) }] },
    ]);
    expect(immediate).to.deep.equal([]);
  });

  it('sends answers of a route that changes nothing at once, with no route for them', () => {
    const { routes, immediate } = routeDecided([reply(1, 4), state(2, 5), reply(3, 4), reply(4)], NOW);
    expect(routes).to.deep.equal([{ part: 5, ops: [{ t: 'state', state: state(2, 5) }] }]);
    expect(immediate).to.deep.equal([reply(1, 4), reply(3, 4), reply(4)]);
    expect(routeDecided([], NOW)).to.deep.equal({ routes: [], immediate: [] });
  });
});

/** A target recording each call as [method, ...args]; `afterDurable` callbacks wait in `durable`. */
function fakeTarget(held: number[] = [1]) {
  const calls: unknown[][] = [];
  const durable: Array<{ fn: () => void; lost: (() => void) | undefined }> = [];
  const rec = (name: string) => (...args: unknown[]): void => { calls.push([name, ...args]); };
  const target: ApplyTarget = {
    delivery: {
      post: rec('post'),
      changed: rec('changed'),
      beginEntry: rec('beginEntry'),
      endEntry: rec('endEntry'),
      afterDurable: (fn, lost) => { durable.push({ fn, lost }); },
      importRecord: (e) => { calls.push(['importRecord', e]); return 1; },
      trimApplied: rec('trimApplied'),
    },
    positions: { join: rec('join') },
    state: rec('state'),
    holds: (conn) => held.includes(conn),
    send: rec('send'),
  };
  return { target, calls, durable };
}

describe('carrier: Applier', () => {
  it('carries each operation out on the matching target method, in order', () => {
    const t = fakeTarget();
    const entry: NewEntry = { conv: 'g:1', at: 5, from: 'A', head: 'h', tail: 't' };
    const change = { ok: true as const, act: 'edit' as const, conv: 'g:1', original: { ...entry, offset: 3 }, post: post(1), answer: { group: '1', seq: 3 } };
    new Applier(t.target).apply([
      { t: 'post', post: post(1), at: NOW },
      { t: 'state', state: state(2) },
      { t: 'change', change, conn: 4, callback: 'cb', at: 6 },
      { t: 'append', entry },
      { t: 'join', account: 'B', conv: 'g:1', since: 7 },
      { t: 'trim', conv: 'g:1', upTo: 8 },
      { t: 'claim', partition: 1, node: 'n1' },
    ]);
    expect(t.calls).to.deep.equal([
      ['post', post(1), NOW],
      ['state', state(2)],
      ['changed', change, 4, 'cb', 6],
      ['importRecord', entry],
      ['join', 'B', 'g:1', 7],
      ['trimApplied', 'g:1', 8],
    ]);
    expect(t.durable).to.deep.equal([]);
  });

  it('ignores a reply for a connection this node does not hold', () => {
    const t = fakeTarget([1]);
    new Applier(t.target).apply([{ t: 'reply', conn: 2, frame: 'x' }]);
    expect(t.durable).to.deep.equal([]);
    expect(t.calls).to.deep.equal([]);
  });

  it('sends a reply once what it confirms is durable', () => {
    const t = fakeTarget([1]);
    new Applier(t.target).apply([{ t: 'reply', conn: 1, frame: 'ok' }]);
    expect(t.calls).to.deep.equal([]);
    expect(t.durable).to.have.length(1);
    t.durable[0]!.fn();
    expect(t.calls).to.deep.equal([['send', 1, 'ok']]);
  });

  it('answers 45007 instead when what the reply confirms was lost, echoing the request the answer names', () => {
    const t = fakeTarget([1]);
    const answer = noticeFrame('group', 'chat', { id: 'G1', mid: 'm1' }, 'cb9');
    new Applier(t.target).apply([{ t: 'reply', conn: 1, frame: answer }]);
    t.durable[0]!.lost!();
    expect(t.calls).to.have.length(1);
    const [name, conn, frame] = t.calls[0] as [string, number, string];
    expect([name, conn]).to.deep.equal(['send', 1]);
    expect(JSON.parse(frame)).to.deep.include({
      type: 'error',
      code: Code.STORAGE_FULL,
      error: STORAGE_FULL_TEXT,
      method: { cat: 'group', act: 'chat' },
      request: { cat: 'group', act: 'chat', callback: 'cb9', mid: 'm1', id: 'G1' },
    });
  });
});
