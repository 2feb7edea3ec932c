/**
 * The registry knows who is where: which connection actors exist, which of them are signed in as
 * which account (one account may have several: phone and desktop), and which worker thread hosts
 * an actor address. It holds no conversation state; actors own that.
 *
 * Delivery and presence differ by one case: a socket that said `offline` stays signed in and keeps
 * getting its messages (as in the first service), but no longer counts for presence. An account is
 * shown online while at least one of its signed-in sockets is not away.
 */
import { AccountSet, type AccountHashes } from '../account-hashes';
import type { Peer, Peers } from '../actors/peer';
import { groupAddress, workerOf } from './placement';

export type { Peer };

export class Registry implements Peers {
  private readonly peers = new Map<number, Peer>();
  private readonly accounts = new Map<string, Set<Peer>>();
  /** Signed-in sockets that said `offline`: still delivered to, not counted for presence. */
  private readonly away = new Set<Peer>();
  /** The signed-in accounts by hash: a cluster node skips ledger entries for none of them (cluster/interest.ts). */
  private readonly hashes = new AccountSet();

  /** An account got its first present socket (`true`) or lost its last (`false`): presence. */
  onPresence: ((account: string, online: boolean) => void) | undefined;

  constructor(private readonly partitions: number, private workers: number) {}

  add(peer: Peer): void { this.peers.set(peer.id, peer); }

  remove(peer: Peer): void {
    this.signOut(peer);
    this.peers.delete(peer.id);
  }

  peer(id: number): Peer | undefined { return this.peers.get(id); }

  signIn(peer: Peer, account: string): void {
    if (peer.account === account) return this.setAway(peer, false);
    this.signOut(peer);
    const was = this.isOnline(account);
    peer.account = account;
    let set = this.accounts.get(account);
    if (!set) { set = new Set(); this.accounts.set(account, set); this.hashes.add(account); }
    set.add(peer);
    if (!was) this.onPresence?.(account, true);
  }

  signOut(peer: Peer): void {
    const account = peer.account;
    if (account === undefined) return;
    const was = this.isOnline(account);
    peer.account = undefined;
    this.away.delete(peer);
    const set = this.accounts.get(account);
    if (!set) return;
    set.delete(peer);
    if (set.size === 0) { this.accounts.delete(account); this.hashes.remove(account); }
    if (was && !this.isOnline(account)) this.onPresence?.(account, false);
  }

  /** `offline` (true) or `online` (false) on a signed-in socket: presence changes, delivery does not. */
  setAway(peer: Peer, away: boolean): void {
    const account = peer.account;
    if (account === undefined || this.away.has(peer) === away) return;
    const was = this.isOnline(account);
    if (away) this.away.add(peer); else this.away.delete(peer);
    const now = this.isOnline(account);
    if (was !== now) this.onPresence?.(account, now);
  }

  /** The signed-in connections of an account (empty when it is away). */
  peersOf(account: string): ReadonlySet<Peer> | undefined { return this.accounts.get(account); }

  /** Whether an account of `h` may be signed in here (false: none is). */
  mayHoldAny(h: AccountHashes): boolean { return this.hashes.holdsAny(h); }

  /** Shown online: a signed-in socket that is not away (an account has a few sockets at most). */
  isOnline(account: string): boolean {
    const set = this.accounts.get(account);
    if (set === undefined) return false;
    for (const p of set) if (!this.away.has(p)) return true;
    return false;
  }

  /** Every account shown online here. */
  *onlineAccounts(): IterableIterator<string> {
    for (const a of this.accounts.keys()) if (this.isOnline(a)) yield a;
  }

  get connectionCount(): number { return this.peers.size; }
  get accountCount(): number { return this.accounts.size; }
  allPeers(): IterableIterator<Peer> { return this.peers.values(); }

  workerOf(address: string): number { return workerOf(address, this.partitions, this.workers); }
  workerOfGroup(id: string): number { return this.workerOf(groupAddress(id)); }

  get workerCount(): number { return this.workers; }
}
