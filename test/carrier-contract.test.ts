/**
 * One suite for every carrier (src/carrier/port.ts), as Centrifuge runs its brokers through one:
 * the embedded carrier on an in-memory store, and the cluster carrier on a real nats-server with
 * JetStream. What the node relies on must hold for both: output handed on is applied here in order,
 * `afterDurable` waits for it, answers that confirm a change wait with it, calls reach this node's
 * actors when it owns them, and the shared secrets are stable.
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import type { GroupCall, Post, Reply, StateOut, VerifyCall } from '../src/actors/envelopes';
import type { ChangeDecision } from '../src/actors/edits';
import { Code } from '../src/protocol/codes';
import { EmbeddedCarrier } from '../src/carrier/embedded';
import type { Op } from '../src/carrier/ops';
import { LocalReads } from '../src/actors/log-reads';
import type { Carrier, Local } from '../src/carrier/port';
import { ClusterCarrier } from '../src/cluster/carrier';
import { loadSettings } from '../src/config';
import { logger } from '../src/log';
import { openStore } from '../src/store/open';
import { natsAvailable, startNats, type NatsHandle } from './support/nats';
import { tempDir } from './support/server';

/** A node's local side that records what the carrier hands it, and applies states to the carrier's store. */
class FakeLocal implements Local {
  readonly applied: Op[] = [];
  readonly sent: Array<[number, string]> = [];
  readonly decided: GroupCall[] = [];
  readonly verified: VerifyCall[] = [];
  readonly online = new Set<string>();
  readonly changes: Array<[string, boolean]> = [];
  constructor(private readonly store: () => Carrier['store']) {}
  apply(ops: readonly Op[]): void {
    for (const op of ops) {
      this.applied.push(op);
      if (op.t === 'state') this.store().states.put(op.state.address, op.state.state);
      if (op.t === 'reply') this.sent.push([op.conn, op.frame]);
    }
  }
  afterDurable(fn: () => void): void { void this.store().flush().then(fn); }
  send(conn: number, frame: string): void { this.sent.push([conn, frame]); }
  decide(call: GroupCall): void { this.decided.push(call); }
  fatal(err: Error): void { throw err; }
  decideChange(): ChangeDecision { return { ok: false, code: Code.UNEXPECTED_INPUT, error: 'no such message' }; }
  verify(call: VerifyCall): void { this.verified.push(call); }
  decimals(): number { return 10; }
  presence = {
    isOnline: (a: string) => this.online.has(a),
    accounts: () => this.online,
    changed: (a: string, on: boolean) => { this.changes.push([a, on]); },
  };
  ephemeralIn(): void {}
  evict(): Promise<void> { return Promise.resolve(); }
  leads(): void {}
  connections(): number { return 0; }
  /** Every account may be here: the fake is handed every entry's operations. */
  mayHold(): boolean { return true; }
  passed(): void {}
  get reads(): LocalReads { return new LocalReads(this.store()); }
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const post = (text: string, part?: number): Post => ({ t: 'post', conv: 'd:a|b', tpl: { head: `{"msg":${JSON.stringify(text)},"to":`, tail: '}' }, from: 'a', to: ['b'], ...(part !== undefined ? { part } : {}) });
const call = (id: string): GroupCall => ({ t: 'group', id, origin: { conn: 1, account: 'a', request: { cat: 'group', act: 'detail', id } as never }, now: Date.now() });

interface Made { carrier: Carrier; close(): Promise<void> }

function contract(name: string, make: () => Promise<Made>, skip: () => boolean = () => false): void {
  describe(`carrier contract: ${name}`, function () {
    this.timeout(30_000);
    let made: Made;
    let local: FakeLocal;
    before(async function () {
      if (skip()) return this.skip();
      made = await make();
      local = new FakeLocal(() => made.carrier.store);
      await made.carrier.start(local);
    });
    after(async () => { await made?.close(); });

    it('applies the node\'s own operations here, in order', async () => {
      made.carrier.submit([{ t: 'post', post: post('one'), at: 1 }, { t: 'post', post: post('two'), at: 2 }]);
      await until('both posts applied', () => local.applied.filter((o) => o.t === 'post').length >= 2);
      const texts = local.applied.filter((o): o is Extract<Op, { t: 'post' }> => o.t === 'post').map((o) => o.post.tpl.head);
      expect(texts.slice(-2)).to.deep.equal(['{"msg":"one","to":', '{"msg":"two","to":']);
    });

    it('afterDurable runs after what was handed on before it is applied', async () => {
      const before = local.applied.length;
      let appliedWhenDone = -1;
      made.carrier.submit([{ t: 'post', post: post('three'), at: 3 }]);
      await new Promise<void>((resolve) => made.carrier.afterDurable(() => { appliedWhenDone = local.applied.length; resolve(); }));
      expect(appliedWhenDone).to.be.greaterThan(before);
    });

    it('an answer that confirms a change is applied with it; one that confirms nothing leaves at once', async () => {
      const state: StateOut = { t: 'state', address: 'group:CONTRACT1', state: { id: 'CONTRACT1', n: 1 }, part: 3 };
      const confirm: Reply = { t: 'reply', conn: 7, frame: '{"confirm":1}', part: 3 };
      const alone: Reply = { t: 'reply', conn: 8, frame: '{"alone":1}', part: 4 };
      made.carrier.decided([state, confirm, alone], Date.now());
      expect(local.sent.some(([c]) => c === 8)).to.equal(true);
      await until('the state and its answer applied', () => local.applied.some((o) => o.t === 'reply' && o.conn === 7));
      const i = local.applied.findIndex((o) => o.t === 'state' && o.state.address === 'group:CONTRACT1');
      const j = local.applied.findIndex((o) => o.t === 'reply' && o.conn === 7);
      expect(i).to.be.at.least(0);
      expect(j).to.be.greaterThan(i);
      expect(local.applied.some((o) => o.t === 'reply' && o.conn === 8)).to.equal(false);
    });

    it('stateOf gives the newest state handed on', async () => {
      made.carrier.decided([{ t: 'state', address: 'group:CONTRACT2', state: { v: 2 }, part: 5 }], Date.now());
      expect(made.carrier.stateOf('group:CONTRACT2')).to.deep.equal({ v: 2 });
      await until('applied', () => local.applied.some((o) => o.t === 'state' && o.state.address === 'group:CONTRACT2'));
      expect(made.carrier.stateOf('group:CONTRACT2')).to.deep.equal({ v: 2 });
    });

    it('calls reach this node\'s actors when it serves them; frames for its sockets reach them', async () => {
      made.carrier.group(call('CONTRACT3'));
      await until('the group call decided here', () => local.decided.some((c) => c.id === 'CONTRACT3'));
      made.carrier.verify({ t: 'verify', op: 'sweep', now: 1 });
      await until('the verify call here', () => local.verified.length > 0);
      made.carrier.sendTo(9, '{"x":1}');
      expect(local.sent).to.deep.include([9, '{"x":1}']);
    });

    it('presence: an account with a socket here is online through the carrier', async () => {
      expect(made.carrier.isOnline('contract-acc')).to.equal(false);
      local.online.add('contract-acc');
      made.carrier.localChanged('contract-acc', true);
      expect(made.carrier.isOnline('contract-acc')).to.equal(true);
      await until('the change reported', () => local.changes.some(([a, on]) => a === 'contract-acc' && on));
    });

    it('takes writes while connected; its resume key is stable', async () => {
      expect(made.carrier.cutOff()).to.equal(undefined);
      const a = await made.carrier.resumeKey();
      const b = await made.carrier.resumeKey();
      expect(a.length).to.equal(32);
      expect(a.equals(b)).to.equal(true);
    });
  });
}

contract('embedded', async () => {
  const dir = tempDir('imgc-carrier-');
  const store = await openStore({ backend: 'memory', dir, fsync: 'off' });
  return { carrier: new EmbeddedCarrier(store, dir), close: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
});

let nats: NatsHandle | undefined;
contract('cluster', async () => {
  nats = await startNats();
  const dir = tempDir('imgc-carrier-');
  const settings = loadSettings(['--cluster', nats.url, '--cluster-name', 'contract', '--data', dir, '--store', 'memory', '--status-port', '0'], {});
  const carrier = await ClusterCarrier.open(settings, logger({ part: 'test' }));
  return {
    carrier,
    close: async () => {
      await carrier.stop();
      await carrier.store.close();
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}, () => !natsAvailable());
