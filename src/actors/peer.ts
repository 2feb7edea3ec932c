/**
 * What the actors on the socket thread need of a connection: its id, its account, a way to write a
 * frame, and how much it has not yet sent (for backpressure). The connection actor implements it;
 * the supervisor's registry indexes peers by id and account.
 */
export interface Peer {
  readonly id: number;
  account: string | undefined;
  /** Writes one frame (already serialized); `false` when the socket is gone. */
  send(frame: string | Buffer): boolean;
  /** Bytes queued on the socket and not yet written to the network. */
  readonly bufferedAmount: number;
  /** The socket asked for its account's own messages (`"sync":"own"` on `active`; see own.ts). */
  readonly syncOwn?: boolean;
}

/** Who is connected: the signed-in connections of an account, and a connection by id. */
export interface Peers {
  peersOf(account: string): ReadonlySet<Peer> | undefined;
  peer(id: number): Peer | undefined;
}
