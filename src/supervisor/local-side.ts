/**
 * What the node hands its carrier (carrier/port.ts `Local`): this node's own shards, sockets,
 * actors and applier. The carrier calls back through it, so decided output and calls reach this
 * node's parts the same way in both modes, without passing through the node's routes.
 */
import { VERIFY_ADDRESS } from '../actors/address';
import type { EphemeralOut } from '../actors/ephemeral-out';
import type { Local } from '../carrier/port';
import { partitionOf } from '../hash';
import type { MainActors } from './main-actors';
import type { Registry } from './registry';
import type { Shards } from './shards';
import type { Verification } from './verification';

export interface LocalParts {
  partitions: number;
  registry: Registry;
  shards: Shards;
  verification: Verification;
  ephemeralOut: EphemeralOut;
  actors: MainActors;
  /** A frame to a socket of this node (the node completes `detail` answers asked with `online`). */
  send(conn: number, frame: string): void;
  /** The node cannot go on. */
  fatal(err: Error): void;
}

export function localSide(p: LocalParts): Local {
  const { registry, shards, verification, ephemeralOut: out, actors: a } = p;
  const verifierPartition = partitionOf(VERIFY_ADDRESS, p.partitions);
  return {
    // Frames queued while applying (typing, presence, receipts) leave with this turn's.
    apply: (ops, entry) => { a.applier.apply(ops, entry); out.flush(); },
    decideChange: (c) => a.delivery.decideChange(c.account, c.conn, c.request),
    afterDurable: (fn, lost) => a.delivery.afterDurable(fn, lost),
    send: p.send,
    decide: (call) => shards.decide(call),
    verify: (call) => shards.verify(call),
    decimals: () => verification.decimals(),
    presence: { isOnline: (acc) => registry.isOnline(acc), accounts: () => registry.onlineAccounts(), changed: (acc, online) => a.presence.changed(acc, online) },
    ephemeralIn: (frames) => { for (const [account, frame] of frames) for (const peer of registry.peersOf(account) ?? []) out.send(peer, frame); },
    evict: (partitions) => shards.evict(partitions, verifierPartition),
    // The chain watcher follows the verification actor: one watcher in a cluster.
    leads: (partition, on) => { if (partition === verifierPartition) void verification.lead(on); },
    connections: () => registry.connectionCount,
    mayHold: (accounts) => registry.mayHoldAny(accounts),
    passed: (last) => a.delivery.passed(last),
    fatal: p.fatal,
    reads: a.delivery.localReads,
  };
}
