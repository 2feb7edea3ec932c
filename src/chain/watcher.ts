/**
 * ChainWatcher: follows the finalized heads of a Substrate node and reports every balances.Transfer
 * in every finalized block, in block order, exactly once per block it marks processed.
 *
 * The watcher owns reconnection: each connection attempt gets a fresh WsProvider with the provider's
 * own auto-reconnect switched off, so there is one retry policy (exponential backoff here) and no
 * hidden re-subscription. Blocks are walked by number from lastProcessed + 1 up to the finalized head,
 * so blocks finalized while disconnected (or before start, from `startAfter`) are never skipped.
 */
import { EventEmitter } from 'node:events';
import { ApiPromise, WsProvider } from '@polkadot/api';
import type { Vec } from '@polkadot/types';
import type { EventRecord } from '@polkadot/types/interfaces';
import type { Logger } from '../log';
import { logger } from '../log';
import { every } from '../log-aggregate';

const warnLost = every('chain watcher: connection lost', 60_000);

export interface Transfer {
  /** SS58 in the chain's own format (see the 'ready' event's ss58Format). */
  from: string;
  to: string;
  /** Base units of the chain token (u128). */
  amount: bigint;
  blockNumber: number;
  blockHash: string;
  /** Index of the event in the block's System.Events; (blockHash, eventIndex) identifies it. */
  eventIndex: number;
}

export interface WatcherOptions {
  endpoint: string;
  /** Last block already processed (the caller's checkpoint); null or absent: start at the finalized head seen first. */
  startAfter?: number | null;
  log?: Logger;
  backoffMs?: { min: number; max: number };
}

export interface WatcherState {
  endpoint: string;
  connected: boolean;
  lastFinalized: number | null;
  lastProcessed: number | null;
  /** Connection attempts made after the first one (retries after a failure or a lost connection). */
  reconnects: number;
  lastError?: string;
}

export interface ChainInfo { decimals: number; ss58Format: number }

export interface ChainWatcherEvents {
  transfer: [Transfer];
  processed: [number];
  /** On every (re)connection, once the chain's metadata is loaded. */
  ready: [ChainInfo];
  disconnected: [string];
}

const DEFAULT_BACKOFF = { min: 500, max: 30_000 };
/** A request the node never answers counts as a lost connection after this long. */
const REQUEST_TIMEOUT_MS = 30_000;

export class ChainWatcher extends EventEmitter<ChainWatcherEvents> {
  private readonly endpoint: string;
  private readonly log: Logger;
  private readonly backoff: { min: number; max: number };
  private running = false;
  /** Bumped on every connection attempt and on stop; work of an older generation is discarded. */
  private gen = 0;
  private api: ApiPromise | undefined;
  private connected = false;
  private lastFinalized: number | null = null;
  private lastProcessed: number | null;
  private attempts = 0;
  private reconnects = 0;
  private lastError: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private walking = false;
  private info: ChainInfo | undefined;
  /** The chain followed so far; a checkpoint of one chain means nothing on another. */
  private genesis: string | undefined;

  constructor(opts: WatcherOptions) {
    super();
    // A wrong scheme is a configuration error, not an outage: say so now rather than retry forever.
    if (!/^wss?:\/\/./.test(opts.endpoint)) throw new TypeError(`chain endpoint must be ws:// or wss://, got "${opts.endpoint}"`);
    this.endpoint = opts.endpoint;
    this.lastProcessed = opts.startAfter ?? null;
    this.log = (opts.log ?? logger()).child({ mod: 'chain-watcher', endpoint: opts.endpoint });
    this.backoff = opts.backoffMs ?? DEFAULT_BACKOFF;
    if (!(this.backoff.min > 0 && this.backoff.max >= this.backoff.min)) throw new RangeError('backoffMs needs 0 < min <= max');
  }

  /** Starts connecting; failures are logged and retried, never thrown. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.gen++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const api = this.api;
    this.api = undefined;
    this.connected = false;
    if (api) await closeApi(api);
  }

  state(): WatcherState {
    const s: WatcherState = {
      endpoint: this.endpoint,
      connected: this.connected,
      lastFinalized: this.lastFinalized,
      lastProcessed: this.lastProcessed,
      reconnects: this.reconnects,
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  /** The chain token's decimals, known once connected. */
  decimals(): number | undefined {
    return this.info?.decimals;
  }

  private connect(): void {
    const gen = ++this.gen;
    if (this.attempts++ > 0) this.reconnects++;
    let provider: WsProvider;
    try {
      // autoConnectMs 0: the provider never reconnects (nor re-subscribes) on its own.
      provider = new WsProvider(this.endpoint, 0, {}, REQUEST_TIMEOUT_MS);
    } catch (e) {
      this.lost(gen, undefined, (e as Error).message);
      return;
    }
    const api = new ApiPromise({ provider, noInitWarn: true });
    api.isReadyOrError.catch(() => undefined);
    this.api = api;
    api.on('error', (e: unknown) => this.lost(gen, api, errorText(e)));
    api.on('disconnected', () => this.lost(gen, api, 'disconnected'));
    api.on('ready', () => { void this.onReady(gen, api); });
    provider.connect().catch((e: unknown) => this.lost(gen, api, errorText(e)));
  }

  private async onReady(gen: number, api: ApiPromise): Promise<void> {
    if (gen !== this.gen) return;
    try {
      const genesis = api.genesisHash.toHex();
      if (this.genesis !== undefined && this.genesis !== genesis) {
        throw new Error(`node is on another chain (genesis ${genesis}, expected ${this.genesis})`);
      }
      this.genesis = genesis;
      const decimals = api.registry.chainDecimals[0] ?? 0;
      this.info = { decimals, ss58Format: api.registry.chainSS58 ?? 42 };
      await api.rpc.chain.subscribeFinalizedHeads((h) => this.onFinalized(gen, h.number.toNumber()));
      if (gen !== this.gen) return;
      this.connected = true;
      this.attempts = 1;
      this.log.info({ ...this.info, chain: api.runtimeChain.toString() }, 'connected, following finalized heads');
      this.safeEmit('ready', this.info);
    } catch (e) {
      this.lost(gen, api, errorText(e));
    }
  }

  private onFinalized(gen: number, n: number): void {
    if (gen !== this.gen) return;
    this.lastFinalized = n;
    // Without a checkpoint, the first finalized head seen is the first block processed.
    if (this.lastProcessed === null) this.lastProcessed = n - 1;
    void this.walk();
  }

  /** Single-flight: processes blocks lastProcessed+1 .. lastFinalized in order with the current connection. */
  private async walk(): Promise<void> {
    if (this.walking) return;
    this.walking = true;
    const gen = this.gen;
    const api = this.api;
    try {
      while (api && gen === this.gen && this.lastProcessed !== null && this.lastFinalized !== null
        && this.lastProcessed < this.lastFinalized) {
        const n = this.lastProcessed + 1;
        const transfers = await readTransfers(api, n);
        if (gen !== this.gen) return;
        for (const t of transfers) this.safeEmit('transfer', t);
        this.lastProcessed = n;
        this.safeEmit('processed', n);
      }
    } catch (e) {
      // The block is retried from scratch on the next connection, so nothing is half-reported.
      this.lost(gen, api, `reading block ${(this.lastProcessed ?? -1) + 1}: ${errorText(e)}`);
    } finally {
      this.walking = false;
      // A newer connection may have asked to walk while this one was finishing.
      if (gen !== this.gen && this.connected) void this.walk();
    }
  }

  private lost(gen: number, api: ApiPromise | undefined, why: string): void {
    if (gen !== this.gen || !this.running) return;
    this.gen++;
    const wasConnected = this.connected;
    this.connected = false;
    this.lastError = why;
    if (api) void closeApi(api);
    if (this.api === api) this.api = undefined;
    const delay = this.nextDelay();
    // A node that stays away is retried for as long as it takes: one line per interval, not one per attempt.
    warnLost(this.log, { err: why, retryInMs: delay, wasConnected }, wasConnected ? 'connection lost' : 'cannot connect');
    if (wasConnected) this.safeEmit('disconnected', why);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.running) this.connect();
    }, delay);
  }

  /** Exponential in the failures since the last good connection, with jitter so restarts do not stampede. */
  private nextDelay(): number {
    const exp = Math.min(this.backoff.max, this.backoff.min * 2 ** Math.min(this.attempts - 1, 30));
    return Math.round(exp / 2 + Math.random() * exp / 2);
  }

  /** A throwing listener is the caller's bug; it must not stall or repeat the walk. */
  private safeEmit<K extends keyof ChainWatcherEvents>(event: K, ...args: ChainWatcherEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: ChainWatcherEvents[K]) => boolean)(event, ...args);
    } catch (e) {
      this.log.error({ err: errorText(e), event }, 'listener threw');
    }
  }
}

/** The balances.Transfer events of finalized block `n`, decoded with the runtime of that block. */
async function readTransfers(api: ApiPromise, n: number): Promise<Transfer[]> {
  const hash = await api.rpc.chain.getBlockHash(n);
  if (hash.isEmpty) throw new Error(`node has no block ${n}`);
  const at = await api.at(hash);
  // Untyped query (no chain-specific augmentation): System.Events is Vec<EventRecord> on every Substrate chain.
  const records = await at.query['system']!['events']!() as unknown as Vec<EventRecord>;
  const blockHash = hash.toHex();
  const out: Transfer[] = [];
  records.forEach((r, eventIndex) => {
    const ev = r.event;
    if (ev.section !== 'balances' || ev.method !== 'Transfer') return;
    const [from, to, amount] = ev.data;
    if (!from || !to || !amount) return;
    out.push({
      from: from.toString(),
      to: to.toString(),
      amount: BigInt(amount.toString()),
      blockNumber: n,
      blockHash,
      eventIndex,
    });
  });
  return out;
}

async function closeApi(api: ApiPromise): Promise<void> {
  if (!api.isConnected) {
    await api.disconnect().catch(() => undefined);
    return;
  }
  // Wait for the socket to really close so no handle outlives stop().
  const closed = new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 1000);
    api.once('disconnected', () => { clearTimeout(t); resolve(); });
  });
  await api.disconnect().catch(() => undefined);
  await closed;
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (e && typeof e === 'object' && 'message' in e && typeof (e as { message: unknown }).message === 'string') {
    return (e as { message: string }).message || 'socket error';
  }
  return String(e);
}
