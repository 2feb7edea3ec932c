/**
 * The verification calls (`vertify` in the protocol): `reg`, what to pay to be verified, and
 * `token`, the token of a verified account. Apart from the client so that each call's frame and
 * answer type are in one place; the client's `reg` and `token` delegate here.
 */
import { ask, type Requester } from './requests.js';
import type { RegAnswer, TokenAnswer } from './types.js';

/** `reg`: what to pay to be verified (or the proof, `done: true`). */
export function reg(host: Requester, account: string): Promise<RegAnswer> {
  return ask(host, true, () => ({ cat: 'vertify', act: 'reg', account }));
}

/** `token`: the verification token of a verified account. */
export function token(host: Requester): Promise<TokenAnswer> {
  return ask(host, true, () => ({ cat: 'vertify', act: 'token' }));
}
