/**
 * DevNode: a development Substrate node on loopback speaking the Substrate JSON-RPC over WebSocket,
 * enough for an unmodified ApiPromise to connect, follow finalized heads and read System.Events.
 * Tests drive it directly (addTransfer, finalizeBlock, dropConnections); `main.ts` runs it standalone.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { logger, type Logger } from '../../log';
import { devRuntime, DEV_PROPERTIES, type Runtime } from './runtime';
import { DevChain, type Block } from './chain';

type Json = unknown;

class RpcError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Notification method (what the client routes on) for each subscribe method. */
const SUBSCRIBE: Record<string, string> = {
  chain_subscribeNewHeads: 'chain_newHead',
  chain_subscribeNewHead: 'chain_newHead',
  subscribe_newHead: 'chain_newHead',
  chain_subscribeAllHeads: 'chain_allHead',
  chain_subscribeFinalizedHeads: 'chain_finalizedHead',
  chain_subscribeFinalisedHeads: 'chain_finalizedHead',
  state_subscribeRuntimeVersion: 'state_runtimeVersion',
  chain_subscribeRuntimeVersion: 'state_runtimeVersion',
  state_subscribeStorage: 'state_storage',
};

const UNSUBSCRIBE = [
  'chain_unsubscribeNewHeads', 'chain_unsubscribeNewHead', 'unsubscribe_newHead', 'chain_unsubscribeAllHeads',
  'chain_unsubscribeFinalizedHeads', 'chain_unsubscribeFinalisedHeads', 'state_unsubscribeRuntimeVersion',
  'chain_unsubscribeRuntimeVersion', 'state_unsubscribeStorage',
];

interface Subscription { notify: string; keys?: string[] }

interface Client { ws: WebSocket; subs: Map<string, Subscription> }

export class DevNode {
  private readonly clients = new Set<Client>();
  private readonly chain: DevChain;
  private refuse = false;
  private nextSub = 1;
  private readonly log: Logger;
  private readonly handlers: Record<string, (params: Json[], c: Client) => Json>;

  private constructor(private readonly wss: WebSocketServer, private readonly rt: Runtime, readonly url: string) {
    this.chain = new DevChain(rt);
    this.log = logger({ mod: 'devnode', url });
    this.handlers = this.makeHandlers();
    wss.on('connection', (ws) => this.onConnection(ws));
  }

  /** Listens on 127.0.0.1; port 0 (the default) picks a free one. */
  static async start(port = 0): Promise<DevNode> {
    const rt = devRuntime();
    let node: DevNode | undefined;
    const wss = await new Promise<WebSocketServer>((resolve, reject) => {
      const s: WebSocketServer = new WebSocketServer({
        host: '127.0.0.1',
        port,
        // Refusing at the handshake (HTTP 503) is what a client sees from a node that is down behind a proxy.
        verifyClient: (_info: { req: IncomingMessage }) => !(node?.refuse ?? false),
      });
      s.once('listening', () => resolve(s));
      s.once('error', reject);
    });
    const addr = wss.address() as AddressInfo;
    node = new DevNode(wss, rt, `ws://127.0.0.1:${addr.port}`);
    node.log.debug({ port: addr.port, genesis: node.chain.genesis.hash }, 'devnode listening');
    return node;
  }

  get port(): number {
    return (this.wss.address() as AddressInfo).port;
  }

  get genesisHash(): string {
    return this.chain.genesis.hash;
  }

  /** Queued into the next block. `from`/`to` are SS58 (any prefix) or hex public keys. */
  addTransfer(from: string, to: string, amount: bigint): void {
    this.chain.queueTransfer({ from, to, amount });
  }

  /** Seals the queue into a new block, announces it as new and finalized, and returns it. */
  async finalizeBlock(): Promise<{ number: number; hash: string }> {
    const b = this.chain.produce();
    this.broadcastBlock(b);
    return { number: b.number, hash: b.hash };
  }

  /** The block at `number`, for assertions. */
  block(number: number): { number: number; hash: string; parentHash: string } | undefined {
    const b = this.chain.blocks[number];
    return b && { number: b.number, hash: b.hash, parentHash: b.header.parentHash.toHex() };
  }

  /** Closes every client socket abruptly, as a node restart would. */
  dropConnections(): void {
    for (const c of this.clients) c.ws.terminate();
    this.clients.clear();
  }

  /** While true, new WebSocket handshakes are refused with HTTP 503. */
  setRefuseConnections(refuse: boolean): void {
    this.refuse = refuse;
  }

  async stop(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.log.debug('devnode stopped');
  }

  private onConnection(ws: WebSocket): void {
    const c: Client = { ws, subs: new Map() };
    this.clients.add(c);
    ws.on('close', () => this.clients.delete(c));
    ws.on('error', (e) => this.log.debug({ err: e.message }, 'client socket error'));
    ws.on('message', (data) => this.onMessage(c, data.toString()));
  }

  private onMessage(c: Client, text: string): void {
    let req: { id?: unknown; method?: unknown; params?: unknown };
    try {
      req = JSON.parse(text) as typeof req;
    } catch {
      this.send(c, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
      return;
    }
    const id = req.id ?? null;
    const method = typeof req.method === 'string' ? req.method : '';
    const params = Array.isArray(req.params) ? req.params as Json[] : [];
    this.log.debug({ method, params }, 'rpc');
    try {
      const sub = SUBSCRIBE[method];
      if (sub !== undefined) {
        const subId = `${this.nextSub++}`;
        const s: Subscription = { notify: sub };
        if (sub === 'state_storage') s.keys = (Array.isArray(params[0]) ? params[0] : []).map(String);
        c.subs.set(subId, s);
        this.send(c, { jsonrpc: '2.0', id, result: subId });
        // Substrate sends the current value right after the subscription id.
        this.notifyCurrent(c, subId, s);
        return;
      }
      if (UNSUBSCRIBE.includes(method)) {
        this.send(c, { jsonrpc: '2.0', id, result: c.subs.delete(String(params[0])) });
        return;
      }
      const h = this.handlers[method];
      if (!h) throw new RpcError(-32601, `Method not found: ${method}`);
      this.send(c, { jsonrpc: '2.0', id, result: h(params, c) });
    } catch (e) {
      const err = e instanceof RpcError ? e : new RpcError(-32603, (e as Error).message);
      this.log.debug({ method, code: err.code, err: err.message }, 'rpc error');
      this.send(c, { jsonrpc: '2.0', id, error: { code: err.code, message: err.message } });
    }
  }

  private send(c: Client, msg: Json): void {
    if (c.ws.readyState === c.ws.OPEN) c.ws.send(JSON.stringify(msg));
  }

  private notify(c: Client, subId: string, s: Subscription, result: Json): void {
    this.send(c, { jsonrpc: '2.0', method: s.notify, params: { subscription: subId, result } });
  }

  private notifyCurrent(c: Client, subId: string, s: Subscription): void {
    const head = this.chain.head;
    switch (s.notify) {
      case 'chain_newHead':
      case 'chain_allHead':
      case 'chain_finalizedHead':
        this.notify(c, subId, s, head.headerJson);
        break;
      case 'state_runtimeVersion':
        this.notify(c, subId, s, this.rt.version);
        break;
      case 'state_storage':
        this.notify(c, subId, s, this.storageChangeSet(head, s.keys ?? []));
        break;
    }
  }

  private broadcastBlock(b: Block): void {
    for (const c of this.clients) {
      for (const [subId, s] of c.subs) {
        if (s.notify === 'state_runtimeVersion') continue;
        if (s.notify === 'state_storage') this.notify(c, subId, s, this.storageChangeSet(b, s.keys ?? []));
        else this.notify(c, subId, s, b.headerJson);
      }
    }
  }

  private storageChangeSet(b: Block, keys: string[]): Json {
    return { block: b.hash, changes: keys.map((k) => [k, this.storage(k, b)]) };
  }

  private storage(key: string, b: Block): string | null {
    return key.toLowerCase() === this.rt.eventsKey ? b.events : null;
  }

  /** The block a `hash` parameter names; absent means the best (= finalized) block. */
  private at(hash: Json): Block {
    if (hash === undefined || hash === null) return this.chain.head;
    const b = typeof hash === 'string' ? this.chain.byHash(hash) : undefined;
    if (!b) throw new RpcError(4003, `Client error: UnknownBlock: header not found for ${String(hash)}`);
    return b;
  }

  private byNumber(n: Json): Block | null {
    if (n === undefined || n === null) return this.chain.head;
    const num = typeof n === 'string' ? Number.parseInt(n, n.startsWith('0x') ? 16 : 10) : Number(n);
    return this.chain.blocks[num] ?? null;
  }

  private makeHandlers(): Record<string, (params: Json[], c: Client) => Json> {
    const rt = this.rt;
    const methods = () => [...Object.keys(this.handlers), ...Object.keys(SUBSCRIBE), ...UNSUBSCRIBE].sort();
    return {
      rpc_methods: () => ({ version: 1, methods: methods() }),
      system_chain: () => 'IMGC Development',
      system_name: () => 'imgc-devnode',
      system_version: () => '0.1.0',
      system_chainType: () => 'Development',
      system_properties: () => ({ ...DEV_PROPERTIES }),
      system_health: () => ({ peers: 0, isSyncing: false, shouldHavePeers: false }),
      chain_getBlockHash: ([n]) => (Array.isArray(n) ? n.map((x) => this.byNumber(x)?.hash ?? null) : this.byNumber(n)?.hash ?? null),
      chain_getHead: () => this.chain.head.hash,
      chain_getFinalizedHead: () => this.chain.head.hash,
      chain_getFinalisedHead: () => this.chain.head.hash,
      chain_getHeader: ([h]) => this.at(h).headerJson,
      chain_getBlock: ([h]) => ({ block: { header: this.at(h).headerJson, extrinsics: [] }, justifications: null }),
      chain_getRuntimeVersion: ([h]) => (this.at(h), rt.version),
      state_getRuntimeVersion: ([h]) => (this.at(h), rt.version),
      state_getMetadata: ([h]) => (this.at(h), rt.metadataHex),
      state_call: ([name, data, h]) => {
        this.at(h);
        if (name === 'Metadata_metadata_versions') return rt.metadataVersions();
        if (name === 'Metadata_metadata_at_version') {
          const v = rt.registry.createType('u32', String(data)).toNumber();
          return rt.metadataAtVersion(v);
        }
        throw new RpcError(4003, `Client error: Execution failed: Other: Exported method ${String(name)} is not found`);
      },
      state_getStorage: ([k, h]) => this.storage(String(k), this.at(h)),
      state_getStorageAt: ([k, h]) => this.storage(String(k), this.at(h)),
      state_queryStorageAt: ([keys, h]) => [this.storageChangeSet(this.at(h), (Array.isArray(keys) ? keys : []).map(String))],
      state_getKeys: ([prefix, h]) => (this.at(h), rt.eventsKey.startsWith(String(prefix).toLowerCase()) ? [rt.eventsKey] : []),
      state_getKeysPaged: ([prefix, , , h]) => (this.at(h), rt.eventsKey.startsWith(String(prefix).toLowerCase()) ? [rt.eventsKey] : []),
      // Development conveniences so a person can exercise a locally running service without a wallet.
      dev_transfer: ([from, to, amount]) => {
        this.addTransfer(String(from), String(to), BigInt(String(amount)));
        return true;
      },
      dev_finalizeBlock: () => {
        const b = this.chain.produce();
        this.broadcastBlock(b);
        return { number: b.number, hash: b.hash };
      },
    };
  }
}
