/**
 * Who counts as someone an account knows, read from the store's membership index (no log read):
 * two accounts share a conversation when their direct conversation exists (it is joined by both
 * with its first message) or they are members of a common group. Presence subscriptions and typing
 * need it.
 */
import { directConv, type Positions } from '../store/ports';

/** The group conversations of `account` (asked once per request, then checked per other account). */
export function groupsOf(positions: Positions, account: string): string[] {
  return positions.memberships(account).filter((m) => m.conv.startsWith('g:')).map((m) => m.conv);
}

/** `me` and `other` share a conversation: a direct one exists, or a group both are members of. */
export function sharesConversation(positions: Positions, me: string, other: string, myGroups?: string[]): boolean {
  if (positions.membership(me, directConv(me, other)) !== undefined) return true;
  return (myGroups ?? groupsOf(positions, me)).some((conv) => positions.membership(other, conv) !== undefined);
}
