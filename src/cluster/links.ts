/**
 * Node-to-node mailboxes over core NATS (nothing here is durable: what must be is in the ledger):
 * group calls travel to the node that owns their partition, and frames (answers that change
 * nothing) to the node that holds their connection. A node's traffic to another node within one
 * turn goes as one NATS message.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { GroupCall, VerifyCall } from '../actors/envelopes';
import type { Engine } from './engine';

interface Parcel {
  calls?: GroupCall[];
  verify?: VerifyCall[];
  frames?: Array<[number, string]>;
}

export interface LinkHooks {
  calls(calls: GroupCall[]): void;
  verify(calls: VerifyCall[]): void;
  frame(conn: number, frame: string): void;
}

/** Connection ids: a node's own 32-bit counter above its number, so an id names its node in the cluster. */
const CONN_SPACE = 2 ** 32;

export function connIdBase(nodeNumber: number): number { return nodeNumber * CONN_SPACE; }

/** The node (id: its number in base 36) that holds connection `conn`. */
export function nodeOfConn(conn: number): string { return Math.floor(conn / CONN_SPACE).toString(36); }

export class Links {
  private readonly out = new Map<string, Parcel>();
  private scheduled = false;
  private sub: Subscription | undefined;
  readonly counters = { parcelsOut: 0, parcelsIn: 0, callsOut: 0, framesOut: 0 };

  constructor(private readonly engine: Engine, private readonly nodeId: string, private readonly hooks: LinkHooks, private readonly log: Logger) {}

  start(): void {
    this.sub = this.engine.nc.subscribe(this.engine.names.inbox(this.nodeId), {
      callback: (err, msg) => {
        if (err) return void this.log.warn({ err }, 'node mailbox failed');
        let p: Parcel;
        try { p = msg.json<Parcel>(); } catch (e) { return void this.log.warn({ err: e }, 'node mailbox: unreadable parcel'); }
        this.counters.parcelsIn++;
        if (p.calls) this.hooks.calls(p.calls);
        if (p.verify) this.hooks.verify(p.verify);
        for (const [conn, frame] of p.frames ?? []) this.hooks.frame(conn, frame);
      },
    });
  }

  call(node: string, call: GroupCall): void { (this.parcel(node).calls ??= []).push(call); this.counters.callsOut++; }

  verify(node: string, call: VerifyCall): void { (this.parcel(node).verify ??= []).push(call); this.counters.callsOut++; }

  frame(node: string, conn: number, frame: string): void { (this.parcel(node).frames ??= []).push([conn, frame]); this.counters.framesOut++; }

  private parcel(node: string): Parcel {
    let p = this.out.get(node);
    if (!p) { p = {}; this.out.set(node, p); }
    if (!this.scheduled) { this.scheduled = true; setImmediate(() => this.flush()); }
    return p;
  }

  private flush(): void {
    this.scheduled = false;
    for (const [node, p] of this.out) {
      try {
        this.engine.nc.publish(this.engine.names.inbox(node), JSON.stringify(p));
        this.counters.parcelsOut++;
      } catch (err) {
        this.log.warn({ err, node }, 'node mailbox: parcel not sent');
      }
    }
    this.out.clear();
  }

  stop(): void { this.sub?.unsubscribe(); }
}
