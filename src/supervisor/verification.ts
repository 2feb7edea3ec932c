/**
 * Verification by payment, on the supervisor's side: the chain-watcher actor (a ChainWatcher on
 * the main thread, since it is I/O, not CPU) posts every finalized transfer to the verification
 * actor, which matches it and sends the payment confirmation to the account's own log (read at
 * its next sign-in if it is away).
 * `reg` and `token` requests are routed here; tokens are signed with the server's own key.
 */
import type { KeyringPair } from '@polkadot/keyring/types';
import { ChainWatcher, type Transfer } from '../chain/watcher';
import { issueToken, loadOrCreateServerKey, serverKeyFromSeed } from '../chain/token';
import { Code } from '../protocol/codes';
import { errorFrame, noticeFrame, type Request } from '../protocol/frames';
import type { Connection } from '../actors/connection';
import type { Cursor, ProofOut, VerifyCall } from '../actors/envelopes';
import { VERIFY_ADDRESS } from '../actors/verifier';
import { logger } from '../log';

export interface VerificationHost {
  /** Posts to the shard hosting the verification actor. */
  toVerifier(item: VerifyCall): void;
  sendTo(conn: number, frame: string): void;
}

export interface VerificationOptions {
  endpoint: string | undefined;
  target: string | undefined;
  dataDir: string;
  tokenTtlMs: number;
}

const SWEEP_MS = 30_000;

export class Verification {
  private watcher: ChainWatcher | undefined;
  private key: KeyringPair | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private leading = false;
  /**
   * The server key's seed is shared by several nodes (a cluster): the chain is then watched only
   * while this node leads (it owns the verification actor's partition), one watcher for them all.
   */
  private shared = false;
  private readonly log = logger({ part: 'verification' });

  constructor(private readonly opts: VerificationOptions, private readonly host: VerificationHost) {}

  get enabled(): boolean { return this.opts.endpoint !== undefined && this.opts.target !== undefined; }
  get issuer(): string | undefined { return this.key?.address; }

  /** Loads the server key (the node's own, or `sharedKeySeed`'s); with a chain configured, asks the verifier where to resume and starts watching. */
  async start(sharedKeySeed?: () => Promise<string>): Promise<void> {
    this.shared = sharedKeySeed !== undefined;
    this.key = sharedKeySeed ? await serverKeyFromSeed(await sharedKeySeed()) : await loadOrCreateServerKey(this.opts.dataDir);
    if (!this.enabled || this.shared) return;
    this.watch();
  }

  /** Asks the verifier where to resume (the watcher starts with its answer) and sweeps expired registrations. */
  private watch(): void {
    this.host.toVerifier({ t: 'verify', op: 'cursor' });
    this.sweeper = setInterval(() => this.host.toVerifier({ t: 'verify', op: 'sweep', now: Date.now() }), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Cluster mode: this node now leads (watches the chain) or no longer does. */
  async lead(on: boolean): Promise<void> {
    if (!this.enabled || on === this.leading) return;
    this.leading = on;
    if (on) return this.watch();
    clearInterval(this.sweeper);
    const w = this.watcher;
    this.watcher = undefined;
    await w?.stop();
  }

  /** The chain's decimals as this node's watcher knows them (undefined: not watching, or not connected yet). */
  decimals(): number | undefined { return this.watcher?.decimals(); }

  /** The verifier's cursor arrived: watch from the block after it (never blocks chat: retries run in the background). */
  onCursor(c: Cursor): void {
    if (this.watcher || !this.enabled || (this.shared && !this.leading)) return;
    const w = new ChainWatcher({ endpoint: this.opts.endpoint!, startAfter: c.lastProcessed, log: this.log });
    w.on('transfer', (t: Transfer) => this.onTransfer(t));
    w.on('processed', (block: number) => this.host.toVerifier({ t: 'verify', op: 'processed', block }));
    w.on('ready', (info: unknown) => this.log.info({ info }, 'chain connected'));
    w.start();
    this.watcher = w;
  }

  private onTransfer(t: Transfer): void {
    const decimals = this.watcher?.decimals() ?? 12;
    this.host.toVerifier({
      t: 'verify', op: 'transfer', decimals, now: Date.now(),
      transfer: { from: t.from, to: t.to, amount: t.amount.toString(), blockNumber: t.blockNumber, blockHash: t.blockHash, eventIndex: t.eventIndex },
    });
  }

  handle(peer: Connection, r: Request): void {
    if (r.act === 'reg') return this.reg(peer, r);
    this.host.toVerifier({ t: 'verify', op: 'proof', conn: peer.id, account: peer.account!, request: r });
  }

  private reg(peer: Connection, r: Request): void {
    if (r.account !== peer.account) return peer.refuse(Code.NOT_PERMITTED, 'only the signed-in account itself may register', r);
    if (!this.enabled) return peer.refuse(Code.VERIFY_DISABLED, 'verification by payment is not enabled on this server', r);
    const decimals = this.watcher?.decimals();
    // With a shared key (a cluster) another node may watch the chain: it fills in the decimals (NaN: not known here).
    if (decimals === undefined && !this.shared) return peer.refuse(Code.UNAVAILABLE, 'the chain node is not reachable yet, try again later', r);
    this.host.toVerifier({ t: 'verify', op: 'reg', conn: peer.id, account: peer.account!, request: r, decimals: decimals ?? Number.NaN, now: Date.now() });
  }

  /** The verifier answered a token request with the account's proof (or none). */
  onProof(p: ProofOut): void {
    if (!p.proof || !this.key) {
      this.host.sendTo(p.conn, errorFrame(Code.NOT_PERMITTED, 'this account is not verified', p.request));
      return;
    }
    const iat = Date.now();
    const exp = iat + this.opts.tokenTtlMs;
    const { amount, blockNumber, blockHash, eventIndex } = p.proof;
    const token = issueToken(this.key, { account: p.proof.account, proof: { amount, blockNumber, blockHash, eventIndex }, iat, exp });
    this.host.sendTo(p.conn, noticeFrame('vertify', 'token', { token, issuer: this.key.address, exp }, p.request.callback));
  }

  chainState(): ReturnType<ChainWatcher['state']> | null {
    return this.watcher?.state() ?? null;
  }

  state(): Record<string, unknown> {
    return {
      enabled: this.enabled,
      issuer: this.key?.address ?? null,
      target: this.opts.target ?? null,
      chain: this.watcher?.state() ?? null,
      address: VERIFY_ADDRESS,
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    await this.watcher?.stop();
  }
}
