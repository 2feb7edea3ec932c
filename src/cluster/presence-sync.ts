/**
 * Presence across nodes: an account is online while it has a socket on any node. Each node tells
 * the others (core NATS, one message per turn) when one of its accounts comes or goes, and a
 * newcomer asks for everyone's list once. A node that is gone takes its accounts with it. Memory:
 * one entry per account online somewhere in the cluster (bounded by the cluster's connections).
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { EndOfTurn } from '../turn';
import type { Engine } from './engine';
import type { PresenceLocal } from '../carrier/port';

export type { PresenceLocal };

interface Change { node: string; on?: string[]; off?: string[]; hello?: boolean; full?: boolean }

/** Accounts per message when a node sends its whole list. */
const LIST_CHUNK = 5000;

export class PresenceSync {
  private readonly remote = new Map<string, Set<string>>();
  private readonly byNode = new Map<string, Set<string>>();
  private on = new Set<string>();
  private off = new Set<string>();
  private readonly turn = new EndOfTurn(() => this.flush());
  private sub: Subscription | undefined;
  readonly counters = { sent: 0, received: 0 };

  constructor(private readonly engine: Engine, private readonly nodeId: string, private readonly local: PresenceLocal, private readonly log: Logger) {}

  private get subject(): string { return `${this.engine.names.ephemeral}.presence`; }

  start(): void {
    this.sub = this.engine.nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) return;
        let c: Change;
        try { c = msg.json<Change>(); } catch { return; }
        if (c.node === this.nodeId || typeof c.node !== 'string') return;
        this.counters.received++;
        if (c.hello) this.sendAll();
        for (const a of c.on ?? []) this.remoteOn(c.node, a);
        for (const a of c.off ?? []) this.remoteOff(c.node, a);
      },
    });
    this.publish({ node: this.nodeId, hello: true });
  }

  /** Online anywhere in the cluster. */
  isOnline(account: string): boolean { return this.local.isOnline(account) || this.remote.has(account); }

  /** An account came to (or left) this node: the others hear of it with this turn's other changes. */
  localChanged(account: string, online: boolean): void {
    if (online) { this.off.delete(account); this.on.add(account); } else { this.on.delete(account); this.off.add(account); }
    this.turn.request();
    if (!this.remote.has(account)) this.local.changed(account, online);
  }

  /** `node` is gone: its accounts are offline unless they have a socket elsewhere. */
  nodeGone(node: string): void {
    const accounts = this.byNode.get(node);
    if (!accounts) return;
    for (const a of [...accounts]) this.remoteOff(node, a);
    this.byNode.delete(node);
  }

  private remoteOn(node: string, account: string): void {
    let nodes = this.remote.get(account);
    const was = this.isOnline(account);
    if (!nodes) { nodes = new Set(); this.remote.set(account, nodes); }
    nodes.add(node);
    let mine = this.byNode.get(node);
    if (!mine) { mine = new Set(); this.byNode.set(node, mine); }
    mine.add(account);
    if (!was) this.local.changed(account, true);
  }

  private remoteOff(node: string, account: string): void {
    const nodes = this.remote.get(account);
    if (!nodes?.delete(node)) return;
    this.byNode.get(node)?.delete(account);
    if (nodes.size > 0) return;
    this.remote.delete(account);
    if (!this.local.isOnline(account)) this.local.changed(account, false);
  }

  private flush(): void {
    if (this.on.size === 0 && this.off.size === 0) return;
    this.publish({ node: this.nodeId, on: [...this.on], off: [...this.off] });
    this.on = new Set();
    this.off = new Set();
  }

  /** Everything online here, for a node that just started. */
  private sendAll(): void {
    let chunk: string[] = [];
    for (const a of this.local.accounts()) {
      chunk.push(a);
      if (chunk.length >= LIST_CHUNK) { this.publish({ node: this.nodeId, on: chunk, full: true }); chunk = []; }
    }
    if (chunk.length > 0) this.publish({ node: this.nodeId, on: chunk, full: true });
  }

  private publish(c: Change): void {
    try {
      this.engine.nc.publish(this.subject, JSON.stringify(c));
      this.counters.sent++;
    } catch (err) {
      this.log.debug({ err }, 'presence change not sent');
    }
  }

  stats(): Record<string, number> { return { ...this.counters, remoteAccounts: this.remote.size }; }

  stop(): void { this.sub?.unsubscribe(); }
}
