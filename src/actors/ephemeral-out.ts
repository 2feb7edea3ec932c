/**
 * The way out for ephemeral frames (typing, presence changes, live read receipts): queued and
 * written together with the next batch of actor output, or within FLUSH_MS at the latest. Sockets
 * are corked for the turn they are written in (see Connection.send), so a typing frame that leaves
 * with the group messages a member gets anyway costs no system call of its own: on a busy server
 * most ephemeral frames join a write that happens regardless. On an idle one they wait FLUSH_MS.
 */
import type { Peer, Peers } from './peer';

export const FLUSH_MS = 20;
/** Frames queued before a flush is forced (a burst must not pile up in memory). */
const QUEUE_MAX = 10_000;

export class EphemeralOut {
  private queue: Array<[Peer, string]> = [];
  private timer: NodeJS.Timeout | undefined;
  sent = 0;

  /**
   * Cluster mode: the same frame for the account's sockets on the other nodes (queued and sent with
   * this turn's others; see cluster/carrier.ts). A no-op when embedded.
   */
  remote: ((account: string, frame: string) => void) | undefined;

  /** `frame` to every socket of `account` (but `except`), here and, in a cluster, on the other nodes; returns the sockets written here. */
  toAccount(peers: Peers, account: string, frame: string, except?: number): number {
    this.remote?.(account, frame);
    const ps = peers.peersOf(account);
    if (ps === undefined) return 0;
    let n = 0;
    for (const p of ps) {
      if (p.id === except) continue;
      this.send(p, frame);
      n++;
    }
    return n;
  }

  send(peer: Peer, frame: string): void {
    this.queue.push([peer, frame]);
    if (this.queue.length >= QUEUE_MAX) return this.flush();
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes everything queued (the node calls it after each batch of actor output). */
  flush(): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.queue.length === 0) return;
    const q = this.queue;
    this.queue = [];
    for (const [peer, frame] of q) if (peer.send(frame)) this.sent++;
  }
}
