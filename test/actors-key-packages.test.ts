/**
 * The key-package decisions without a server (src/actors/key-packages.ts): publish and its bounds
 * (the oldest dropped past 16, a 9th device refused, a package held not added twice), claim (oldest
 * first, the last resort when none is left and kept, `except` honoured), count, remove, what a
 * malformed stored state reads as; and the actor over a fake carrier: two claims never share a
 * one-time package, answers wait for durability, a lost write is refused and forgotten.
 */
import { expect } from 'chai';
import {
  claimFrom, decideCount, decidePublish, decideRemove, directoryOf, KEYS_DEVICES_MAX, KEYS_PER_DEVICE, KeyPackages, keysAddress,
  type Directory, type KeysDecision,
} from '../src/actors/key-packages';
import type { StateOut } from '../src/actors/envelopes';
import type { Peer } from '../src/actors/peer';
import { Code } from '../src/protocol/codes';
import type { Request } from '../src/protocol/frames';
import { KeyWire, validate } from '../src/protocol/schema';
import { damagedState } from '../src/store/ports';

const A = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const B = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';

const dev = (n: number): string => n.toString(16).padStart(64, '0');
const kps = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}AA==`);

/** The new directory of a decision that must change it. */
function changed<M>(d: KeysDecision<M>): Directory {
  if ('code' in d || d.dir === undefined) throw new Error(`expected a change, got ${JSON.stringify(d)}`);
  return d.dir;
}

describe('actors: key packages', () => {
  it('the wire never lets through more packages than a device keeps', () => {
    expect(KeyWire.publishMax).to.be.at.most(KEYS_PER_DEVICE);
  });

  describe('publish', () => {
    it('appends to the device (made on its first publish) and answers the count', () => {
      const d1 = decidePublish([], dev(1), ['p1', 'p2']);
      expect(d1).to.deep.equal({ dir: [{ device: dev(1), packages: ['p1', 'p2'] }], msg: { device: dev(1), count: 2, lastResort: false } });
      const d2 = decidePublish(changed(d1), dev(1), ['p3'], 'lr');
      expect(changed(d2)).to.deep.equal([{ device: dev(1), packages: ['p1', 'p2', 'p3'], lastResort: 'lr' }]);
      expect(d2).to.have.deep.property('msg', { device: dev(1), count: 3, lastResort: true });
      const d3 = decidePublish(changed(d2), dev(2), []);
      expect(changed(d3)).to.deep.equal([{ device: dev(1), packages: ['p1', 'p2', 'p3'], lastResort: 'lr' }, { device: dev(2), packages: [] }]);
    });

    it('keeps the newest 16: the oldest are dropped', () => {
      let dir: Directory = [];
      dir = changed(decidePublish(dir, dev(1), kps('a', 10)));
      const d = decidePublish(dir, dev(1), kps('b', 10));
      expect(changed(d)[0]!.packages).to.deep.equal([...kps('a', 10).slice(4), ...kps('b', 10)]);
      expect(changed(d)[0]!.packages).to.have.length(KEYS_PER_DEVICE);
      expect(d).to.have.deep.property('msg', { device: dev(1), count: 16, lastResort: false });
    });

    it('a package the device holds is not added twice; a publish that adds nothing changes nothing', () => {
      const dir = changed(decidePublish([], dev(1), ['p1', 'p2', 'p1'], 'lr'));
      expect(dir[0]!.packages).to.deep.equal(['p1', 'p2']);
      expect(decidePublish(dir, dev(1), ['p2', 'p1'], 'lr')).to.deep.equal({ msg: { device: dev(1), count: 2, lastResort: true } });
      expect(changed(decidePublish(dir, dev(1), [], 'lr2'))[0]).to.deep.equal({ device: dev(1), packages: ['p1', 'p2'], lastResort: 'lr2' });
    });

    it('a 9th device is refused (44744, pointing at keys/remove); a known device still publishes', () => {
      let dir: Directory = [];
      for (let i = 0; i < KEYS_DEVICES_MAX; i++) dir = changed(decidePublish(dir, dev(i), ['p']));
      const refused = decidePublish(dir, dev(99), ['p']);
      expect(refused).to.have.property('code', Code.UNEXPECTED_INPUT);
      expect((refused as { error: string }).error).to.include('keys/remove').and.include(String(KEYS_DEVICES_MAX));
      expect(changed(decidePublish(dir, dev(0), ['q']))).to.have.length(KEYS_DEVICES_MAX);
      expect(changed(decidePublish(changed(decideRemove(dir, dev(3))), dev(99), ['p']))).to.have.length(KEYS_DEVICES_MAX);
    });
  });

  describe('claim', () => {
    const dir: Directory = [
      { device: dev(1), packages: ['a1', 'a2'], lastResort: 'alr' },
      { device: dev(2), packages: [], lastResort: 'blr' },
      { device: dev(3), packages: [] },
      { device: dev(4), packages: ['d1'] },
    ];

    it('takes the oldest one-time package of each device, the last resort (kept, flagged) when none is left, nothing from a device with neither', () => {
      const c = claimFrom(A, dir, new Set());
      expect(c.claimed).to.deep.equal([
        { account: A, device: dev(1), kp: 'a1' },
        { account: A, device: dev(2), kp: 'blr', lastResort: true },
        { account: A, device: dev(4), kp: 'd1' },
      ]);
      expect(c.dir).to.deep.equal([
        { device: dev(1), packages: ['a2'], lastResort: 'alr' },
        { device: dev(2), packages: [], lastResort: 'blr' },
        { device: dev(3), packages: [] },
        { device: dev(4), packages: [] },
      ]);
      const again = claimFrom(A, c.dir!, new Set());
      expect(again.claimed.map((p) => p.kp)).to.deep.equal(['a2', 'blr']);
      const third = claimFrom(A, again.dir!, new Set());
      expect(third.claimed).to.deep.equal([
        { account: A, device: dev(1), kp: 'alr', lastResort: true },
        { account: A, device: dev(2), kp: 'blr', lastResort: true },
      ]);
      expect(third, 'only last resorts: nothing to write').to.not.have.property('dir');
      expect(claimFrom(A, third.dir ?? again.dir!, new Set()).claimed.map((p) => p.kp), 'the last resort is never removed').to.deep.equal(['alr', 'blr']);
    });

    it('leaves out the devices in except; an account with no devices gives nothing', () => {
      const c = claimFrom(B, dir, new Set([dev(1), dev(4)]));
      expect(c.claimed).to.deep.equal([{ account: B, device: dev(2), kp: 'blr', lastResort: true }]);
      expect(c).to.not.have.property('dir');
      expect(claimFrom(B, [], new Set())).to.deep.equal({ claimed: [] });
    });
  });

  it('count lists each device; remove takes one away (a device not there changes nothing)', () => {
    const dir: Directory = [{ device: dev(1), packages: ['a'], lastResort: 'l' }, { device: dev(2), packages: [] }];
    expect(decideCount(dir)).to.deep.equal({ devices: [{ device: dev(1), count: 1, lastResort: true }, { device: dev(2), count: 0, lastResort: false }] });
    expect(decideCount([])).to.deep.equal({ devices: [] });
    expect(decideRemove(dir, dev(1))).to.deep.equal({ dir: [{ device: dev(2), packages: [] }], msg: { device: dev(1), removed: true } });
    expect(decideRemove(dir, dev(3))).to.deep.equal({ msg: { device: dev(3), removed: false } });
  });

  it('a malformed stored state reads as empty; malformed devices are skipped; the bounds hold', () => {
    for (const bad of [undefined, null, 'x', 42, {}, { devices: [] }, damagedState(keysAddress(A))]) expect(directoryOf(bad), JSON.stringify(bad)).to.deep.equal([]);
    const good = { device: dev(1), packages: ['a'], lastResort: 'l' };
    expect(directoryOf([null, 'x', { device: 'NOTHEX', packages: [] }, { device: dev(2) }, { device: dev(3), packages: 'a' }, good, { ...good, packages: ['dup'] }]))
      .to.deep.equal([good]);
    expect(directoryOf([{ device: dev(1), packages: ['a', 7, { x: 1 }, 'b'], lastResort: 5 }])).to.deep.equal([{ device: dev(1), packages: ['a', 'b'] }]);
    const many = Array.from({ length: 12 }, (_, i) => ({ device: dev(i), packages: kps('p', 20) }));
    const read = directoryOf(many);
    expect(read).to.have.length(KEYS_DEVICES_MAX);
    expect(read[0]!.packages).to.deep.equal(kps('p', 20).slice(-KEYS_PER_DEVICE));
  });

  describe('the actor over a fake carrier', () => {
    interface Fake { states: Map<string, unknown>; durable: Array<{ fn: () => void; lost?: () => void }>; keys: KeyPackages }
    function fake(): Fake {
      const states = new Map<string, unknown>();
      const durable: Fake['durable'] = [];
      const keys = new KeyPackages({
        stateOf: (address) => states.get(address),
        submit: (out: StateOut[]) => { for (const s of out) { if (s.state === undefined) states.delete(s.address); else states.set(s.address, JSON.parse(JSON.stringify(s.state))); } },
        afterDurable: (fn, lost) => { durable.push(lost ? { fn, lost } : { fn }); },
      });
      return { states, durable, keys };
    }
    function peer(account: string): Peer & { frames: Array<Record<string, any>> } {
      const frames: Array<Record<string, any>> = [];
      return { id: 1, account, bufferedAmount: 0, frames, send: (f) => { frames.push(JSON.parse(String(f)) as Record<string, any>); return true; } };
    }
    const keysReq = (act: string, extra: Record<string, unknown> = {}): Request => ({ cat: 'keys', act, callback: act, ...extra });

    it('two claims get different one-time packages, then the last resort; answers wait for durability', () => {
      const f = fake();
      const alice = peer(A);
      const bob = peer(B);
      f.keys.request(alice, keysReq('publish', { device: dev(1), packages: ['k1', 'k2'], lastResort: 'lr' }));
      expect(alice.frames, 'not before it is durable').to.deep.equal([]);
      f.durable.shift()!.fn();
      expect(alice.frames[0]!.msg).to.deep.equal({ device: dev(1), count: 2, lastResort: true });
      expect(f.states.get(keysAddress(A))).to.deep.equal([{ device: dev(1), packages: ['k1', 'k2'], lastResort: 'lr' }]);
      for (let i = 0; i < 3; i++) f.keys.request(bob, keysReq('claim', { accounts: [A, B] }));
      expect(f.durable, 'the third claim (a last resort) changed nothing').to.have.length(2);
      for (const d of f.durable.splice(0)) d.fn();
      expect(bob.frames.map((x) => x.msg.packages)).to.deep.equal([
        [{ account: A, device: dev(1), kp: 'lr', lastResort: true }],
        [{ account: A, device: dev(1), kp: 'k1' }],
        [{ account: A, device: dev(1), kp: 'k2' }],
      ]);
      expect(f.states.get(keysAddress(A))).to.deep.equal([{ device: dev(1), packages: [], lastResort: 'lr' }]);
    });

    it('a state applied elsewhere is read again; remove of the last device removes the state; a lost write is refused (45007) and forgotten', () => {
      const f = fake();
      const alice = peer(A);
      f.states.set(keysAddress(A), [{ device: dev(1), packages: ['x'] }]);
      f.keys.request(alice, keysReq('count'));
      expect(alice.frames.pop()!.msg).to.deep.equal({ devices: [{ device: dev(1), count: 1, lastResort: false }] });
      f.states.set(keysAddress(A), [{ device: dev(1), packages: ['x', 'y'] }]);
      f.keys.changed(keysAddress(A));
      f.keys.request(alice, keysReq('count'));
      expect(alice.frames.pop()!.msg).to.deep.equal({ devices: [{ device: dev(1), count: 2, lastResort: false }] });

      const before = f.states.get(keysAddress(A));
      f.keys.request(alice, keysReq('remove', { device: dev(1) }));
      expect(f.states.has(keysAddress(A))).to.equal(false);
      f.states.set(keysAddress(A), before); // the store lost it
      f.durable.shift()!.lost!();
      expect(alice.frames.pop()).to.include({ type: 'error', code: Code.STORAGE_FULL });
      f.keys.request(alice, keysReq('count'));
      expect(alice.frames.pop()!.msg.devices, 'read again from what the store kept').to.have.length(1);
      f.keys.request(alice, keysReq('remove', { device: dev(9) }));
      expect(alice.frames.pop()!.msg).to.deep.equal({ device: dev(9), removed: false });
      expect(f.durable).to.have.length(0);
    });
  });

  describe('the schema of cat keys', () => {
    const ok = (r: Record<string, unknown>): unknown => validate({ cat: 'keys', ...r } as Request);
    const code = (r: Record<string, unknown>): unknown => (ok(r) as { code?: number } | undefined)?.code;
    const big = 'A'.repeat(KeyWire.packageChars);

    it('publish: a device id, 0 to 16 base64 packages of at most 2048 characters, an optional last resort', () => {
      expect(ok({ act: 'publish', device: dev(1), packages: [] })).to.equal(undefined);
      expect(ok({ act: 'publish', device: dev(1), packages: Array(16).fill(big), lastResort: 'ab+/cd==' })).to.equal(undefined);
      expect(code({ act: 'publish', packages: [] })).to.equal(Code.MISSING_PARAMS);
      expect(code({ act: 'publish', device: dev(1) })).to.equal(Code.MISSING_PARAMS);
      for (const device of ['A'.repeat(64), 'a'.repeat(63), 'g'.repeat(64), 7, [dev(1)]]) expect(code({ act: 'publish', device, packages: [] }), String(device)).to.equal(Code.UNEXPECTED_INPUT);
      for (const packages of [Array(17).fill('ab'), ['a-b'], [''], [`${big}A`], ['ab=='.concat('=')], [1], 'ab', {}]) {
        expect(code({ act: 'publish', device: dev(1), packages }), JSON.stringify(packages).slice(0, 40)).to.equal(Code.UNEXPECTED_INPUT);
      }
      for (const lastResort of ['', 'a_b', `${big}A`, 1, ['ab']]) expect(code({ act: 'publish', device: dev(1), packages: [], lastResort })).to.equal(Code.UNEXPECTED_INPUT);
    });

    it('claim: 1 to 50 distinct valid accounts, except 0 to 400 device ids; count; remove', () => {
      expect(ok({ act: 'claim', accounts: [A, B], except: [] })).to.equal(undefined);
      expect(ok({ act: 'claim', accounts: [A], except: Array(400).fill(dev(1)) })).to.equal(undefined);
      expect(code({ act: 'claim' })).to.equal(Code.MISSING_PARAMS);
      expect(code({ act: 'claim', accounts: [] })).to.equal(Code.UNEXPECTED_INPUT);
      expect(code({ act: 'claim', accounts: Array(51).fill(A).map((a: string, i: number) => (i === 0 ? a : `${a}${i}`)) })).to.equal(Code.UNEXPECTED_INPUT);
      expect(code({ act: 'claim', accounts: [A, A] })).to.equal(Code.UNEXPECTED_INPUT);
      expect(code({ act: 'claim', accounts: [A, 'nope'] })).to.equal(Code.INVALID_ACCOUNT);
      expect(code({ act: 'claim', accounts: A })).to.equal(Code.UNEXPECTED_INPUT);
      expect(code({ act: 'claim', accounts: [A], except: Array(401).fill(dev(1)) })).to.equal(Code.UNEXPECTED_INPUT);
      expect(code({ act: 'claim', accounts: [A], except: ['x'] })).to.equal(Code.UNEXPECTED_INPUT);
      expect(ok({ act: 'count' })).to.equal(undefined);
      expect(ok({ act: 'remove', device: dev(1) })).to.equal(undefined);
      expect(code({ act: 'remove' })).to.equal(Code.MISSING_PARAMS);
      expect(code({ act: 'nope' })).to.equal(Code.INVALID_REQUEST);
    });
  });
});
