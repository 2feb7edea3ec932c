/**
 * The way out for ephemeral frames (typing, presence changes, live read receipts): queued and
 * written together with the next batch of actor output, or within FLUSH_MS at the latest. Sockets
 * are corked for the turn they are written in (see Connection.send), so a typing frame that leaves
 * with the group messages a member gets anyway costs no system call of its own: on a busy server
 * most ephemeral frames join a write that happens regardless. On an idle one they wait FLUSH_MS.
 */
import type { Peer } from './peer';

export const FLUSH_MS = 20;
/** Frames queued before a flush is forced (a burst must not pile up in memory). */
const QUEUE_MAX = 10_000;

export class EphemeralOut {
  private queue: Array<[Peer, string]> = [];
  private timer: NodeJS.Timeout | undefined;
  sent = 0;

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
