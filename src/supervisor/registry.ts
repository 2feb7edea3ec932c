/**
 * The registry knows who is where: which connection actors exist, which of them are signed in as
 * which account (one account may have several: phone and desktop), and which worker thread hosts
 * an actor address. It holds no conversation state; actors own that.
 */
import type { Peer, Peers } from '../actors/peer';
import { groupAddress, workerOf } from './placement';

export type { Peer };

export class Registry implements Peers {
  private readonly peers = new Map<number, Peer>();
  private readonly accounts = new Map<string, Set<Peer>>();

  /** An account got its first signed-in socket (`true`) or lost its last (`false`): presence. */
  onPresence: ((account: string, online: boolean) => void) | undefined;

  constructor(private readonly partitions: number, private workers: number) {}

  add(peer: Peer): void { this.peers.set(peer.id, peer); }

  remove(peer: Peer): void {
    this.signOut(peer);
    this.peers.delete(peer.id);
  }

  peer(id: number): Peer | undefined { return this.peers.get(id); }

  signIn(peer: Peer, account: string): void {
    if (peer.account === account) return;
    this.signOut(peer);
    peer.account = account;
    let set = this.accounts.get(account);
    const first = !set;
    if (!set) { set = new Set(); this.accounts.set(account, set); }
    set.add(peer);
    if (first) this.onPresence?.(account, true);
  }

  signOut(peer: Peer): void {
    const account = peer.account;
    if (account === undefined) return;
    peer.account = undefined;
    const set = this.accounts.get(account);
    if (!set) return;
    set.delete(peer);
    if (set.size === 0) {
      this.accounts.delete(account);
      this.onPresence?.(account, false);
    }
  }

  /** The signed-in connections of an account (empty when it is away). */
  peersOf(account: string): ReadonlySet<Peer> | undefined { return this.accounts.get(account); }

  isOnline(account: string): boolean { return this.accounts.has(account); }

  /** Every account with a signed-in socket here. */
  onlineAccounts(): IterableIterator<string> { return this.accounts.keys(); }

  get connectionCount(): number { return this.peers.size; }
  get accountCount(): number { return this.accounts.size; }
  allPeers(): IterableIterator<Peer> { return this.peers.values(); }

  workerOf(address: string): number { return workerOf(address, this.partitions, this.workers); }
  workerOfGroup(id: string): number { return this.workerOf(groupAddress(id)); }

  get workerCount(): number { return this.workers; }
}
