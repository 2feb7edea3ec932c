/**
 * Asking the server through the client's `request`: the shape of what asks (`Requester`) and the
 * call that resolves with the answer's `msg`. Apart from the client so that the group and
 * verification calls share one way of asking.
 */
import type { NoticeFrame, Request } from './types.js';

/** What sends requests: the client (groups and verification ask through it). */
export interface Requester {
  readonly account: string;
  request(frame: Request, repeat: boolean): Promise<NoticeFrame>;
}

/** Sends the frame `build()` makes (inside, so a bad argument rejects) and resolves with the answer's `msg`. */
export async function ask<T = unknown>(host: Requester, repeat: boolean, build: () => Request): Promise<T> {
  return (await host.request(build(), repeat)).msg as T;
}
