/**
 * Node-to-node mailboxes over core NATS (nothing here is durable: what must be is in the ledger):
 * group calls travel to the node that owns their partition, and frames (answers that change
 * nothing) to the node that holds their connection. A node's traffic to another node within one
 * turn goes as one NATS message.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { EndOfTurn } from '../turn';
import type { GroupCall, VerifyCall } from '../actors/envelopes';
import type { Engine } from './engine';
import type { OwnedCall } from './owned';

interface Parcel {
  calls?: GroupCall[];
  verify?: VerifyCall[];
  /** Direct messages and edits for the partitions the node keeps. */
  owned?: OwnedCall[];
  frames?: Array<[number, string]>;
}

export interface LinkHooks {
  calls(calls: GroupCall[]): void;
  verify(calls: VerifyCall[]): void;
  owned(calls: OwnedCall[]): void;
  frame(conn: number, frame: string): void;
  /** Ephemeral frames from another node, for the sockets of these accounts held here. */
  ephemeral(frames: Array<[string, string]>): void;
  /** Calls sent to `node` that it did not take (it is gone, or did not answer in time). */
  undelivered(node: string, calls: GroupCall[], verify: VerifyCall[], owned: OwnedCall[]): void;
}

/** How long a node has to confirm it took a parcel of calls. */
const TAKE_TIMEOUT_MS = 2000;

/** Connection ids: a node's own 32-bit counter above its number, so an id names its node in the cluster. */
const CONN_SPACE = 2 ** 32;

export function connIdBase(nodeNumber: number): number { return nodeNumber * CONN_SPACE; }

/** The node (id: its number in base 36) that holds connection `conn`. */
export function nodeOfConn(conn: number): string { return Math.floor(conn / CONN_SPACE).toString(36); }

export class Links {
  private readonly out = new Map<string, Parcel>();
  private readonly turn = new EndOfTurn(() => this.flush());
  private sub: Subscription | undefined;
  private ephSub: Subscription | undefined;
  private ephOut: Array<[string, string]> = [];
  readonly counters = { parcelsOut: 0, parcelsIn: 0, callsOut: 0, framesOut: 0, undelivered: 0, ephemeralOut: 0, ephemeralIn: 0 };

  constructor(private readonly engine: Engine, private readonly nodeId: string, private readonly hooks: LinkHooks, private readonly log: Logger) {}

  start(): void {
    this.sub = this.engine.nc.subscribe(this.engine.names.inbox(this.nodeId), {
      callback: (err, msg) => {
        if (err) return void this.log.warn({ err }, 'node mailbox failed');
        let p: Parcel;
        try { p = msg.json<Parcel>(); } catch (e) { return void this.log.warn({ err: e }, 'node mailbox: unreadable parcel'); }
        this.counters.parcelsIn++;
        // Calls are confirmed as taken: a sender whose parcel is not confirmed sends them elsewhere.
        if (msg.reply) msg.respond('');
        try {
          if (p.calls) this.hooks.calls(p.calls);
          if (p.verify) this.hooks.verify(p.verify);
          if (p.owned) this.hooks.owned(p.owned);
          for (const [conn, frame] of p.frames ?? []) this.hooks.frame(conn, frame);
        } catch (e) {
          // Parcels come from other nodes (trusted, but a bug there must not stop this node).
          this.log.error({ err: e }, 'node mailbox: a parcel failed; the rest of it is dropped');
        }
      },
    });
    this.ephSub = this.engine.nc.subscribe(this.engine.names.ephemeral, {
      callback: (err, msg) => {
        if (err) return;
        let e: { node?: unknown; frames?: unknown };
        try { e = msg.json<typeof e>(); } catch { return; }
        if (e.node === this.nodeId || !Array.isArray(e.frames)) return;
        this.counters.ephemeralIn += e.frames.length;
        this.hooks.ephemeral(e.frames as Array<[string, string]>);
      },
    });
  }

  /** Typing, live read receipts: for the account's sockets on every other node (one broadcast per turn). */
  ephemeral(account: string, frame: string): void {
    this.ephOut.push([account, frame]);
    this.turn.request();
  }

  call(node: string, call: GroupCall): void { (this.parcel(node).calls ??= []).push(call); this.counters.callsOut++; }

  verify(node: string, call: VerifyCall): void { (this.parcel(node).verify ??= []).push(call); this.counters.callsOut++; }

  owned(node: string, call: OwnedCall): void { (this.parcel(node).owned ??= []).push(call); this.counters.callsOut++; }

  frame(node: string, conn: number, frame: string): void { (this.parcel(node).frames ??= []).push([conn, frame]); this.counters.framesOut++; }

  private parcel(node: string): Parcel {
    let p = this.out.get(node);
    if (!p) { p = {}; this.out.set(node, p); }
    this.turn.request();
    return p;
  }

  private flush(): void {
    if (this.ephOut.length > 0) {
      try { this.engine.nc.publish(this.engine.names.ephemeral, JSON.stringify({ node: this.nodeId, frames: this.ephOut })); } catch (err) { this.log.debug({ err }, 'ephemeral frames not sent'); }
      this.counters.ephemeralOut += this.ephOut.length;
      this.ephOut = [];
    }
    for (const [node, p] of this.out) {
      const subject = this.engine.names.inbox(node);
      this.counters.parcelsOut++;
      if (p.calls === undefined && p.verify === undefined && p.owned === undefined) {
        try { this.engine.nc.publish(subject, JSON.stringify(p)); } catch (err) { this.log.warn({ err, node }, 'node mailbox: frames not sent'); }
        continue;
      }
      this.engine.nc.request(subject, JSON.stringify(p), { timeout: TAKE_TIMEOUT_MS }).catch((err: unknown) => {
        this.counters.undelivered++;
        this.log.debug({ err, node }, 'node mailbox: calls not taken');
        this.hooks.undelivered(node, p.calls ?? [], p.verify ?? [], p.owned ?? []);
      });
    }
    this.out.clear();
  }

  stop(): void { this.sub?.unsubscribe(); this.ephSub?.unsubscribe(); }
}
