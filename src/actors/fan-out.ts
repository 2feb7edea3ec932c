/**
 * Fan-out: a record once stored is written to the sockets of its recipients that are online, and
 * to the sender's own-sync sockets (own.ts). A frame for an account that acknowledges waits for the
 * durable gate; one for a connection still catching up is held by the catch-up behind its backlog.
 *
 * A file of its own because it only writes sockets and the delivered positions of who got a frame:
 * what is stored, and when, is the delivery actor's; when output may leave is the gate's.
 */
import { renderFrame, type Template } from '../protocol/frames';
import type { ConvId } from '../store/ports';
import type { PositionBook } from './account-positions';
import type { CatchUp } from './catch-up';
import type { DurableGate } from './durable-gate';
import { ownRecipient, renderOwnFrame } from './own';
import type { Peer, Peers } from './peer';

export class FanOut {
  constructor(
    private readonly peers: Peers,
    private readonly positions: PositionBook,
    private readonly catchUp: CatchUp,
    private readonly gate: DurableGate,
    private readonly counters: { pushed: number },
  ) {}

  /** Writes the record at `offset` to every socket of `account` but `except` (an acknowledging account's once durable). */
  deliver(account: string, offset: number, p: { tpl: Template; except?: number }): void {
    const peers = this.peers.peersOf(account);
    if (!peers || peers.size === 0) return;
    this.whenMayLeave(account, () => this.push(account, offset, p.tpl, p.except));
  }

  /** Own-device sync (own.ts): the record to the sender's sockets that asked for it, but the sending one. */
  echoOwn(account: string, conv: ConvId, offset: number, p: { tpl: Template; origin?: number }): void {
    const wants = (peer: Peer): boolean => peer.syncOwn === true && peer.id !== p.origin;
    const peers = this.peers.peersOf(account);
    if (!peers || ![...peers].some(wants)) return;
    this.whenMayLeave(account, () => {
      const frame = renderOwnFrame(p.tpl, ownRecipient(conv, account), offset);
      let written = false;
      for (const peer of this.peers.peersOf(account) ?? []) if (wants(peer) && this.write(peer, frame, offset)) written = true;
      if (written) this.positions.delivered(account, offset);
    });
  }

  private push(account: string, offset: number, tpl: Template, except: number | undefined): void {
    const frame = renderFrame(tpl, account, offset);
    let written = false;
    for (const peer of this.peers.peersOf(account) ?? []) {
      // The sending socket (`except`) has its frame already: it counts as written.
      if (peer.id === except || this.write(peer, frame, offset)) written = true;
    }
    if (!written) return;
    this.counters.pushed++;
    this.positions.delivered(account, offset);
  }

  /** An acknowledging account's frames wait until durable; others leave at once. */
  private whenMayLeave(account: string, write: () => void): void {
    if (this.positions.get(account).ackMode) this.gate.after(write);
    else write();
  }

  /** Writes a frame to a socket, or holds it behind the backlog; true if the socket took it now. */
  private write(peer: Peer, frame: string, offset: number): boolean {
    return !this.catchUp.held(peer, frame, offset) && peer.send(frame);
  }
}
