/**
 * The embedded carrier: the whole service in this process. Output is applied to the store as it
 * is decided (the delivery actor commits each turn in one transaction), calls go to this node's
 * shards, and frames to its sockets. Nothing is shared, so there is nothing to wait for but the disk.
 */
import type { GroupCall, VerifyCall } from '../actors/envelopes';
import { loadOrCreateResumeKey } from '../net/sessions';
import { errorFrame } from '../protocol/frames';
import type { Store } from '../store/ports';
import type { Carrier, ChangeCall, Local } from './port';
import { changeOp, routeDecided, type Decided, type Op } from './ops';

export class EmbeddedCarrier implements Carrier {
  readonly replica = false;
  readonly firstConnId = undefined;
  readonly serverKeySeed = undefined;
  readonly ageTrim = undefined;
  readonly reads = undefined;
  private local: Local | undefined;

  constructor(readonly store: Store, private readonly dataDir: string) {}

  get sharedStore(): Store { return this.store; }

  resumeKey(): Promise<Buffer> { return Promise.resolve(loadOrCreateResumeKey(this.dataDir)); }

  start(local: Local): Promise<void> {
    this.local = local;
    return Promise.resolve();
  }

  stop(): Promise<void> { return Promise.resolve(); }

  cutOff(): string | undefined { return undefined; }

  group(call: GroupCall): void { this.here.decide(call); }
  verify(call: VerifyCall): void { this.here.verify(call); }
  sendTo(conn: number, frame: string): void { this.here.send(conn, frame); }
  post(op: Extract<Op, { t: 'post' }>): void { this.here.apply([op]); }

  change(call: ChangeCall): void {
    const d = this.here.decideChange(call);
    if (!d.ok) return this.here.send(call.conn, errorFrame(d.code, d.error, call.request));
    this.here.apply([changeOp(d, call.conn, call.request, call.at)]);
  }
  ephemeral(): void { /* no other node */ }
  isOnline(account: string): boolean { return this.here.presence.isOnline(account); }
  localChanged(account: string, online: boolean): void { this.here.presence.changed(account, online); }

  decided(items: readonly Decided[], now: number): void {
    const { routes, immediate } = routeDecided(items, now);
    for (const r of immediate) this.here.send(r.conn, r.frame);
    for (const route of routes) this.here.apply(route.ops);
  }

  submit(ops: Op[]): void { this.here.apply(ops); }

  afterDurable(fn: () => void, lost?: () => void): void { this.here.afterDurable(fn, lost); }

  stateOf(address: string): unknown { return this.store.states.get(address); }
  positionsOf(): undefined { return undefined; }
  status(): null { return null; }

  private get here(): Local {
    if (!this.local) throw new Error('carrier not started');
    return this.local;
  }
}
