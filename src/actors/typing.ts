/**
 * Typing (`{"cat":"chat","act":"typing","with":<SS58>}` or `"group":<GID>`), on the thread that
 * holds the sockets: relayed at once to the sockets of the other side that are online (in a group,
 * to every member online but the sender), as
 * `{"type":"notice","method":{"cat":"chat","act":"typing"},"msg":{"account":<sender>,"with":<sender>}}`
 * (direct: `with` names the conversation as the recipient sees it, i.e. the sender) or
 * `{…,"msg":{"account":<sender>,"group":<GID>}}`. Never stored, never answered (a client sends it
 * every few seconds while typing; nobody waits for it).
 *
 * A group's members come from its stored state through the GroupMembers cache (no round trip to the
 * group actor: typing is frequent and must cost next to nothing); only members may send. A direct
 * one goes only to an account the sender shares a conversation with (their direct conversation
 * exists, or a common group: contacts.ts), so typing cannot reach strangers. Nobody gets typing
 * from an account they blocked (blocks.ts). Refused typing is dropped silently and counted. Throttled
 * per sender: at most one frame per conversation per THROTTLE_MS (the first passes, the rest of
 * the interval is dropped silently and counted).
 */
import { LRUCache } from 'lru-cache';
import { noticeFrame, type Request } from '../protocol/frames';
import type { Positions } from '../store/ports';
import { sharesConversation } from './contacts';
import { conversationOf } from './conversation-ref';
import type { EphemeralOut } from './ephemeral-out';
import type { GroupMembers } from './group-members';
import type { Peer, Peers } from './peer';

export const THROTTLE_MS = 1000;

/** Who blocked whom (blocks.ts). */
export interface BlockList { has(blocker: string, who: string): boolean }

export class Typing {
  /** `<account> <conv>` → when its last frame was relayed. */
  private readonly last = new LRUCache<string, number>({ max: 100_000, ttl: THROTTLE_MS * 2, ttlAutopurge: false });
  readonly counters = { relayed: 0, dropped: 0, refused: 0, frames: 0 };

  constructor(
    private readonly peers: Peers,
    private readonly members: GroupMembers,
    private readonly out: EphemeralOut,
    private readonly positions: Positions,
    private readonly blocks: BlockList,
  ) {}

  request(peer: Peer, r: Request, now = Date.now()): void {
    const me = peer.account!;
    const ref = conversationOf(me, r);
    // Malformed or not permitted: dropped (typing is fire-and-forget), counted.
    if (ref === undefined || ref.with === me) { this.counters.refused++; return; }
    const { conv, group } = ref;
    let to: Iterable<string>;
    let msg: Record<string, string>;
    if (group !== undefined) {
      const m = this.members.of(group);
      if (!m.has(me)) { this.counters.refused++; return; }
      to = m;
      msg = { account: me, group };
    } else {
      to = [ref.with];
      msg = { account: me, with: me };
    }
    const key = `${me} ${conv}`;
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < THROTTLE_MS) { this.counters.dropped++; return; }
    // After the throttle: a refused sender costs one membership read a second, not one per frame.
    if (ref.with !== undefined && (this.blocks.has(ref.with, me) || !sharesConversation(this.positions, me, ref.with))) {
      this.last.set(key, now);
      this.counters.refused++;
      return;
    }
    this.last.set(key, now);
    this.counters.relayed++;
    const frame = noticeFrame('chat', 'typing', msg);
    for (const account of to) {
      if (account !== me && (group === undefined || !this.blocks.has(account, me))) this.counters.frames += this.out.toAccount(this.peers, account, frame);
    }
  }

  stats(): Record<string, number> { return { ...this.counters }; }
}
