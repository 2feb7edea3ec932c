/** Sockets without a socket, for the delivery actor's unit tests: each keeps the frames it was sent. */
import type { Peer, Peers } from '../../src/actors/peer';

export class FakePeer implements Peer {
  frames: string[] = [];
  bufferedAmount = 0;
  constructor(readonly id: number, public account: string | undefined) {}
  send(frame: string | Buffer): boolean { this.frames.push(String(frame)); return true; }
}

/** The registry's view of `list`: by account and by id. */
export function peersOf(list: FakePeer[]): Peers {
  return {
    peersOf: (account) => new Set(list.filter((p) => p.account === account)),
    peer: (id) => list.find((p) => p.id === id),
  };
}
