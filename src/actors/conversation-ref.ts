/**
 * The conversation a request names, as `history`, `read`, `typing`, `edit` and `delete` name it:
 * `with` (the direct conversation with that account) or `group`, exactly one of them.
 */
import type { Request } from '../protocol/frames';
import { directConv, groupConv, type ConvId } from '../store/ports';

export type ConversationRef =
  | { group: string; with?: undefined; conv: ConvId }
  | { with: string; group?: undefined; conv: ConvId };

/** The conversation `r` names for `account`; undefined when it names neither or both. */
export function conversationOf(account: string, r: Request): ConversationRef | undefined {
  const group = typeof r.group === 'string' ? r.group : undefined;
  const peer = typeof r.with === 'string' ? r.with : undefined;
  if (group !== undefined && peer === undefined) return { group, conv: groupConv(group) };
  if (peer !== undefined && group === undefined) return { with: peer, conv: directConv(account, peer) };
  return undefined;
}

/** The keys that name the conversation in an answer: `{group}` or `{with}`. */
export function refKeys(ref: ConversationRef): { group: string } | { with: string } {
  return ref.group !== undefined ? { group: ref.group } : { with: ref.with };
}
