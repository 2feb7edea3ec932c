/** The node's figures (/status `counters`, /metrics), each kept by the part that sees the event. */
export interface Counters {
  framesIn: number;
  framesOut: number;
  restarts: number;
  /** Sockets dropped because they did not read what they were sent. */
  droppedSlow: number;
  /** Requests refused because they were being processed at two crashes of their shard in a row. */
  poison: number;
  /** Frames refused as malformed or out of order (not JSON, too large, bad spam, invalid fields, before sign-in). */
  badFrames: number;
  /** Frames refused by the per-connection rate limit. */
  rateLimited: number;
  /** Sign-ins (`active`) refused: bad or missing signature, one already in progress, invalid fields. */
  signInsRefused: number;
  /** Requests that would write refused with 45007 while the store was full. */
  storeRefused: number;
}

export function newCounters(): Counters {
  return { framesIn: 0, framesOut: 0, restarts: 0, droppedSlow: 0, poison: 0, badFrames: 0, rateLimited: 0, signInsRefused: 0, storeRefused: 0 };
}
