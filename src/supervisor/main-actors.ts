/**
 * The actors of the socket thread (beside the connection actors): delivery, presence, typing, read
 * receipts, block lists, key packages and the group-member index, built on the carrier's store,
 * with the one applier of decided output (carrier/applier.ts) writing through them.
 */
import type { Settings } from '../config';
import { Delivery } from '../actors/delivery';
import type { StateOut } from '../actors/envelopes';
import type { EphemeralOut } from '../actors/ephemeral-out';
import { GroupMembers } from '../actors/group-members';
import { Presence } from '../actors/presence';
import { Receipts } from '../actors/receipts';
import { Typing } from '../actors/typing';
import { Blocks } from '../actors/blocks';
import { KeyPackages } from '../actors/key-packages';
import { Applier } from '../carrier/applier';
import type { Carrier } from '../carrier/port';
import type { Registry } from './registry';

export interface MainActors {
  delivery: Delivery;
  presence: Presence;
  typing: Typing;
  receipts: Receipts;
  members: GroupMembers;
  blocks: Blocks;
  keys: KeyPackages;
  applier: Applier;
}

export interface MainActorHooks {
  /** A state about to land in the store, as the node amends it (revocation lists merged). */
  applying(s: StateOut): StateOut;
  /** A state landed (the node counts groups). */
  applied(s: StateOut): void;
  /** A frame to a socket of this node. */
  send(conn: number, frame: string): void;
  /** The store cannot go on (reported to the node, which stops the service). */
  fatal(err: unknown): void;
}

export function startMainActors(s: Settings, carrier: Carrier, registry: Registry, out: EphemeralOut, hooks: MainActorHooks): MainActors {
  const store = carrier.store;
  const delivery = new Delivery(store, registry, { retainCount: s.retainCount, retainAgeMs: s.retainAgeMs, groupBacklog: s.groupBacklog, signinBacklogs: s.signinBacklogs, maxBuffered: s.maxBuffered }, carrier.reads);
  delivery.onFatal = (err) => hooks.fatal(err);
  delivery.replica = carrier.replica;
  // A cluster node keeps the records of its partitions only (cluster/stored-partitions.ts).
  delivery.partial = carrier.replica;
  delivery.start(carrier.ageTrim);
  const members = new GroupMembers(store.states);
  const blocks = new Blocks({
    stateOf: (address) => carrier.stateOf(address),
    submit: (state) => carrier.submit([{ t: 'state', state }]),
    afterDurable: (fn, lost) => carrier.afterDurable(fn, lost),
    log: store.log,
    positions: store.positions,
  });
  const keys = new KeyPackages({
    stateOf: (address) => carrier.stateOf(address),
    submit: (states) => carrier.submit(states.map((state) => ({ t: 'state', state }))),
    afterDurable: (fn, lost) => carrier.afterDurable(fn, lost),
  });
  const presence = new Presence({ peer: (id) => registry.peer(id), peersOf: (a) => registry.peersOf(a), isOnline: (a) => carrier.isOnline(a) }, store.positions, out, blocks);
  registry.onPresence = (account, online) => carrier.localChanged(account, online);
  out.remote = (account, frame) => carrier.ephemeral(account, frame);
  const typing = new Typing(registry, members, out, store.positions, blocks);
  const receipts = new Receipts(carrier.sharedStore, registry, members, (fn, lost) => carrier.afterDurable(fn, lost), out, (conv) => delivery.newestOf(conv));
  delivery.annotateHistory = (conv, offsets) => receipts.annotate(conv, offsets);
  const applier = new Applier({
    delivery,
    positions: store.positions,
    state: (st) => {
      const item = hooks.applying(st);
      members.changed(item.address);
      blocks.changed(item.address);
      keys.changed(item.address);
      hooks.applied(item);
      delivery.state(item);
    },
    holds: (conn) => registry.peer(conn) !== undefined,
    send: hooks.send,
  });
  return { delivery, presence, typing, receipts, members, blocks, keys, applier };
}
