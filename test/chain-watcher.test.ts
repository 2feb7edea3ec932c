import { expect } from 'chai';
import { DevNode } from '../src/chain/devnode/server';
import { ChainWatcher, type Transfer } from '../src/chain/watcher';
import { closedPort, record, silent, until } from './support/chain-wait';

// Well-known development accounts (//Alice, //Bob, //Charlie), SS58 prefix 42.
const ALICE = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const BOB = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const CHARLIE = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';

const FAST = { min: 50, max: 200 };

describe('chain watcher against the devnode', function () {
  this.timeout(5000);
  let node: DevNode | undefined;
  let watcher: ChainWatcher | undefined;

  afterEach(async () => {
    await watcher?.stop();
    await node?.stop();
    watcher = undefined;
    node = undefined;
  });

  it('reports a finalized transfer with its exact bigint amount, block and event index', async () => {
    node = await DevNode.start();
    watcher = new ChainWatcher({ endpoint: node.url, log: silent, backoffMs: FAST });
    const transfers = record<Transfer>(watcher, 'transfer');
    const processed = record<number>(watcher, 'processed');
    const ready = record<{ decimals: number; ss58Format: number }>(watcher, 'ready');
    watcher.start();
    await until(() => processed.includes(0), 4000, 'genesis processed');
    expect(ready).to.deep.equal([{ decimals: 12, ss58Format: 42 }]);
    expect(watcher.decimals()).to.equal(12);

    // Above 2^53: a float anywhere on the path would change the value.
    const big = 1_234_567_890_123_456_789n;
    node.addTransfer(ALICE, BOB, big);
    node.addTransfer(BOB, CHARLIE, 7n);
    const b1 = await node.finalizeBlock();
    await until(() => processed.includes(1), 2000, 'block 1 processed');

    expect(transfers).to.deep.equal([
      { from: ALICE, to: BOB, amount: big, blockNumber: 1, blockHash: b1.hash, eventIndex: 0 },
      // Index 1 is the first transfer's ExtrinsicSuccess.
      { from: BOB, to: CHARLIE, amount: 7n, blockNumber: 1, blockHash: b1.hash, eventIndex: 2 },
    ]);
    expect(processed).to.deep.equal([0, 1]);
    expect(watcher.state()).to.include({ connected: true, lastFinalized: 1, lastProcessed: 1, reconnects: 0 });
  });

  it('after the node drops it, reconnects and reports the blocks finalized meanwhile, in order', async () => {
    node = await DevNode.start();
    watcher = new ChainWatcher({ endpoint: node.url, log: silent, backoffMs: FAST });
    const transfers = record<Transfer>(watcher, 'transfer');
    const processed = record<number>(watcher, 'processed');
    watcher.start();
    await until(() => watcher!.state().connected && processed.includes(0), 4000, 'first connection');

    node.setRefuseConnections(true);
    node.dropConnections();
    await until(() => !watcher!.state().connected, 1000, 'disconnect noticed');
    node.addTransfer(ALICE, BOB, 1_000_000_000_001n);
    const b1 = await node.finalizeBlock();
    node.addTransfer(BOB, ALICE, 2_000_000_000_002n);
    const b2 = await node.finalizeBlock();
    // Refused for a while: the watcher keeps retrying without reporting anything.
    await new Promise((r) => setTimeout(r, 300));
    expect(transfers).to.have.length(0);
    expect(watcher.state().connected).to.equal(false);
    expect(watcher.state().lastError).to.be.a('string');

    node.setRefuseConnections(false);
    await until(() => processed.includes(2), 4000, 'blocks 1 and 2 after reconnect');
    expect(transfers.map((t) => [t.blockNumber, t.blockHash, t.from, t.to, t.amount])).to.deep.equal([
      [1, b1.hash, ALICE, BOB, 1_000_000_000_001n],
      [2, b2.hash, BOB, ALICE, 2_000_000_000_002n],
    ]);
    expect(processed).to.deep.equal([0, 1, 2]);
    const s = watcher.state();
    expect(s.connected).to.equal(true);
    expect(s.reconnects).to.be.at.least(1);
  });

  it('walks from startAfter + 1 up to the finalized head at startup', async () => {
    node = await DevNode.start();
    const hashes: string[] = [];
    for (let i = 1; i <= 4; i++) {
      node.addTransfer(ALICE, BOB, BigInt(i) * 10n ** 12n);
      hashes.push((await node.finalizeBlock()).hash);
    }
    watcher = new ChainWatcher({ endpoint: node.url, startAfter: 2, log: silent, backoffMs: FAST });
    const transfers = record<Transfer>(watcher, 'transfer');
    const processed = record<number>(watcher, 'processed');
    watcher.start();
    await until(() => processed.includes(4), 4000, 'blocks 3 and 4');
    expect(processed).to.deep.equal([3, 4]);
    expect(transfers.map((t) => [t.blockNumber, t.blockHash, t.amount])).to.deep.equal([
      [3, hashes[2], 3n * 10n ** 12n],
      [4, hashes[3], 4n * 10n ** 12n],
    ]);
  });

  it('refuses a transfer with an invalid address at once', async () => {
    node = await DevNode.start();
    expect(() => node!.addTransfer('not-an-address', BOB, 1n)).to.throw();
    expect((await node.finalizeBlock()).number).to.equal(1);
  });

  it('does not throw on an unreachable endpoint, reports it and keeps retrying', async () => {
    const port = await closedPort();
    watcher = new ChainWatcher({ endpoint: `ws://127.0.0.1:${port}`, log: silent, backoffMs: FAST });
    expect(() => watcher!.start()).not.to.throw();
    await until(() => watcher!.state().reconnects >= 2, 3000, 'two retries');
    const s = watcher.state();
    expect(s).to.include({ endpoint: `ws://127.0.0.1:${port}`, connected: false, lastFinalized: null, lastProcessed: null });
    // Node 22's own WebSocket (which @polkadot/api uses there) says "network error" where ws said ECONNREFUSED.
    expect(s.lastError).to.match(/ECONNREFUSED|disconnected|connect|network error/i);
    expect(watcher.decimals()).to.equal(undefined);
    // A wrong scheme is a configuration error, reported at construction instead of retried.
    expect(() => new ChainWatcher({ endpoint: `http://127.0.0.1:${port}` })).to.throw(TypeError);
  });

  it('connects once an initially unreachable node comes up', async () => {
    node = await DevNode.start();
    node.setRefuseConnections(true);
    watcher = new ChainWatcher({ endpoint: node.url, log: silent, backoffMs: FAST });
    watcher.start();
    await until(() => watcher!.state().lastError !== undefined, 2000, 'a refused attempt');
    expect(watcher.state().connected).to.equal(false);
    node.setRefuseConnections(false);
    await until(() => watcher!.state().lastProcessed === 0, 3000, 'connection and genesis processed');
    expect(watcher.state()).to.include({ connected: true, lastFinalized: 0 });
    expect(watcher.state().reconnects).to.be.at.least(1);
  });
});
