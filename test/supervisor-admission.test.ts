/**
 * Admission on its own (src/supervisor/admission.ts): a fake store reports its health, the real
 * limits count groups and quotas, and the probe timer is watched through a stand-in setInterval,
 * so nothing waits for STORE_PROBE_MS.
 */
import { expect } from 'chai';
import pino from 'pino';
import { Code } from '../src/protocol/codes';
import { STORAGE_FULL_TEXT, type Request } from '../src/protocol/frames';
import type { Store, StoreHealth } from '../src/store/ports';
import { Admission, STORE_PROBE_MS, type Requester } from '../src/supervisor/admission';
import { DiskWatch } from '../src/supervisor/disk-watch';
import { Limits, type LimitValues } from '../src/supervisor/limits';

const log = pino({ level: 'silent' });

const VALUES: LimitValues = {
  maxConnections: 100, maxConnectionsPerIp: 10, groupsPerHour: 2, maxGroups: 5, maxGroupSize: 50, maxBlocked: 50, detailBytes: 1 << 20,
  groupsPerHourPerAddress: 100, strangerAddsPerHour: 100, minFreeMb: 0,
};

/** A store that only reports its health; `set` changes it and tells the listeners. */
function fakeStore() {
  let health: StoreHealth = { writable: true, since: 0, reason: null, failedCommits: 0 };
  const listeners: Array<(h: StoreHealth) => void> = [];
  const fake = {
    probes: 0,
    probeThrows: false,
    health: () => health,
    onHealth: (l: (h: StoreHealth) => void) => { listeners.push(l); },
    probe: (): boolean => {
      fake.probes++;
      if (fake.probeThrows) throw new Error('still full');
      return false;
    },
    set(writable: boolean): void {
      health = { writable, since: 1, reason: writable ? null : 'disk full', failedCommits: writable ? 0 : 1 };
      for (const l of listeners) l(health);
    },
  };
  return fake;
}

function peer(account = 'A'): Requester & { frames: Array<Record<string, unknown>> } {
  const frames: Array<Record<string, unknown>> = [];
  return { account, frames, send: (f: string) => frames.push(JSON.parse(f) as Record<string, unknown>) };
}

function admission(cutOff: () => string | undefined = () => undefined, values = VALUES) {
  const counters = { storeRefused: 0 };
  const limits = new Limits(values, log);
  const adm = new Admission({ cutOff, limits, disk: new DiskWatch('.', 0, log), counters, log });
  const store = fakeStore();
  return { adm, counters, limits, store, watch: () => adm.watch(store as unknown as Store) };
}

const send: Request = { cat: 'group', act: 'chat', callback: 'c1' };
const create: Request = { cat: 'group', act: 'create', callback: 'c2' };

/** Runs `fn` with setInterval/clearInterval replaced by recorders (nothing is scheduled for real). */
function withFakeIntervals(fn: (t: { started: Array<{ fn: () => void; ms: number | undefined }>; cleared: unknown[] }) => void): void {
  const started: Array<{ fn: () => void; ms: number | undefined; timer: NodeJS.Timeout }> = [];
  const cleared: unknown[] = [];
  const real = { set: globalThis.setInterval, clear: globalThis.clearInterval };
  globalThis.setInterval = ((f: () => void, ms?: number) => {
    const timer = { unref: () => timer, id: started.length } as unknown as NodeJS.Timeout;
    started.push({ fn: f, ms, timer });
    return timer;
  }) as typeof setInterval;
  globalThis.clearInterval = ((t: NodeJS.Timeout | undefined) => { if (t !== undefined) cleared.push(t); }) as typeof clearInterval;
  try {
    fn({ started, cleared });
  } finally {
    globalThis.setInterval = real.set;
    globalThis.clearInterval = real.clear;
  }
}

describe('supervisor: admission', () => {
  it('lets writes through while no store is watched or the store is writable', () => {
    const a = admission();
    const p = peer();
    expect(a.adm.writes(p, send)).to.equal(true);
    a.watch();
    expect(a.adm.writes(p, send)).to.equal(true);
    expect(p.frames).to.deep.equal([]);
    expect(a.counters.storeRefused).to.equal(0);
  });

  it('refuses writes with 45003 and the reason while cut off from the store, counted', () => {
    let reason: string | undefined = 'cut off from the cluster';
    const a = admission(() => reason);
    a.watch();
    const p = peer();
    expect(a.adm.writes(p, send)).to.equal(false);
    expect(p.frames).to.have.length(1);
    expect(p.frames[0]).to.deep.include({ type: 'error', code: Code.UNAVAILABLE, error: 'cut off from the cluster' });
    expect(p.frames[0]!.request).to.deep.equal(send);
    expect(a.counters.storeRefused).to.equal(1);
    reason = undefined;
    expect(a.adm.writes(p, send)).to.equal(true);
  });

  it('refuses writes with 45007 while the store is not writable, counted, and takes them again once it is', () => {
    const a = admission();
    a.watch();
    const p = peer();
    withFakeIntervals(() => a.store.set(false));
    expect(a.adm.writes(p, send)).to.equal(false);
    expect(a.adm.writes(p, create)).to.equal(false);
    expect(p.frames.map((f) => [f.code, f.error])).to.deep.equal([[Code.STORAGE_FULL, STORAGE_FULL_TEXT], [Code.STORAGE_FULL, STORAGE_FULL_TEXT]]);
    expect(a.counters.storeRefused).to.equal(2);
    withFakeIntervals(() => a.store.set(true));
    expect(a.adm.writes(p, send)).to.equal(true);
    expect(a.counters.storeRefused).to.equal(2);
  });

  it('probes the store every STORE_PROBE_MS while it is full, once, and stops when it is writable again', () => {
    const a = admission();
    a.watch();
    withFakeIntervals(({ started, cleared }) => {
      a.store.set(false);
      a.store.set(false);
      expect(started.map((s) => s.ms)).to.deep.equal([STORE_PROBE_MS]);
      started[0]!.fn();
      expect(a.store.probes).to.equal(1);
      // A probe that throws is only logged.
      a.store.probeThrows = true;
      expect(() => started[0]!.fn()).not.to.throw();
      expect(a.store.probes).to.equal(2);
      a.store.set(true);
      expect(cleared).to.have.length(1);
      // Full again: a new probe timer.
      a.store.set(false);
      expect(started).to.have.length(2);
      a.adm.stop();
      expect(cleared).to.have.length(2);
    });
  });

  it('refuses a create with 44029 once the server holds maxGroups, counting the hit', () => {
    const a = admission();
    a.limits.groups = VALUES.maxGroups;
    const p = peer();
    expect(a.adm.create(p, create)).to.equal(false);
    expect(p.frames[0]).to.deep.include({ code: Code.RATE_LIMITED });
    expect(p.frames[0]!.error).to.contain(String(VALUES.maxGroups));
    expect(p.frames[0]).not.to.have.property('retryAfterMs');
    expect(a.limits.view().maxGroups.hits).to.equal(1);
    a.limits.groups = VALUES.maxGroups - 1;
    expect(a.adm.create(p, create)).to.equal(true);
  });

  it("refuses a create past the account's hourly quota with 44029 and retryAfterMs; other accounts go on", () => {
    const a = admission();
    const p = peer('A');
    for (let i = 0; i < VALUES.groupsPerHour; i++) expect(a.adm.create(p, create)).to.equal(true);
    expect(a.adm.create(p, create)).to.equal(false);
    const f = p.frames[0]!;
    expect(f).to.deep.include({ type: 'error', code: Code.RATE_LIMITED, request: create });
    expect(f.retryAfterMs).to.be.a('number').within(1, 3600_000);
    expect(f.error).to.contain(`retry in ${f.retryAfterMs as number} ms`);
    expect(a.limits.view().groupsPerHour.hits).to.equal(1);
    expect(a.adm.create(peer('B'), create)).to.equal(true);
  });
});
