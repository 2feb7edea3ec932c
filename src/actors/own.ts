/**
 * Own-device sync (added): what an account sends reaches its other signed-in sockets that asked for
 * it (`"sync":"own"` on `active`), as the frame its recipients get plus `"own":true`, with the same
 * `seq`; and a sign-in that asked for it gets the account's own records in its backlog too. The
 * `to` of an own frame is the real recipient of a direct message, and the account itself in a group
 * (as `history` reads it). Clients that do not ask never see their own messages come back.
 */
import type { Template } from '../protocol/frames';
import type { ConvId } from '../store/ports';

/** The value of `sync` on `active` that turns own-device sync on for that socket. */
export const SYNC_OWN = 'own';

/** A record the account itself sent, rendered for one of its own sockets. */
export function renderOwnFrame(t: Template, to: string, seq: number): string {
  return `${t.head}${JSON.stringify(to)}${t.tail},"own":true,"seq":${seq}}`;
}

/** Who an own frame names in `to`: the other account of a direct conversation, else the account itself. */
export function ownRecipient(conv: ConvId, account: string): string {
  if (conv.startsWith('d:')) {
    const [, a, b] = conv.split(':');
    return a === account ? b! : a!;
  }
  return account;
}
