/**
 * Read receipts (`{"cat":"chat","act":"read","with"|"group":…,"seq":<offset>}`), on the thread that
 * holds the sockets. Separate from `ack`, which is delivery to a device: `read` says a person has
 * seen the conversation up to an offset. One read position per (account, conversation), only
 * moving forward, capped at the conversation's newest record.
 *
 * Stored through the existing ActorStates port, one small value per (conversation, account) at the
 * address `read:<conv>:<account>` (no change to the store's ports or backends: the same contract
 * covers it; a prefix listing gives a group's read positions). Written in the turn, durable with
 * the turn's commit; the requester's answer and the live receipts leave once it is durable.
 *
 * Live receipt `{"type":"notice","method":{"cat":"chat","act":"read"},"msg":{"account","with"|"group","seq"}}`
 * goes to the other side of a direct conversation (`with` names the conversation as the recipient
 * sees it: the reader) and to the reader's other devices (`with`: the other side); in a group to
 * the members online, for groups of at most LIVE_GROUP_MAX members (past that, every read of every
 * member would be a frame to every member online: big groups read receipts from `history`).
 *
 * `history` answers carry (added keys): direct, `reads`: {account: seq} of both accounts that have
 * one; group, `readCounts`: for each message of the page, how many current members have read
 * through it, and `reads`: the positions of at most READS_SHOWN members (the furthest read).
 */
import { Code } from '../protocol/codes';
import { errorFrame, noticeFrame, type Request } from '../protocol/frames';
import type { ConvId, Store } from '../store/ports';
import { conversationOf, refKeys } from './conversation-ref';
import type { GroupMembers } from './group-members';
import type { EphemeralOut } from './ephemeral-out';
import type { Peer, Peers } from './peer';

export const LIVE_GROUP_MAX = 200;
export const READS_SHOWN = 50;
/** Read positions of a group looked at for a `history` answer (members that left may still have one). */
const READS_SCAN_MAX = 20_000;

export const readAddress = (conv: ConvId, account: string): string => `read:${conv}:${account}`;

export class Receipts {
  readonly counters = { marked: 0, unchanged: 0, frames: 0 };

  constructor(
    private readonly store: Store,
    private readonly peers: Peers,
    private readonly members: GroupMembers,
    private readonly afterDurable: (fn: () => void, lost?: () => void) => void,
    private readonly out: EphemeralOut,
    /** The newest offset of a conversation (a mark is bounded by it): in a cluster its records may be kept on another node. */
    private readonly newest: (conv: ConvId) => number = (conv) => store.log.top(conv)?.last ?? 0,
  ) {}

  /** The account's read position in `conv` (0: nothing read). */
  position(conv: ConvId, account: string): number {
    const v = this.store.states.get(readAddress(conv, account));
    return typeof v === 'number' ? v : 0;
  }

  request(peer: Peer, r: Request, lost: () => void): void {
    const me = peer.account!;
    const ref = conversationOf(me, r);
    if (ref === undefined) {
      return void peer.send(errorFrame(Code.MISSING_PARAMS, 'read needs one of "with" (an account) or "group" (a group id)', r));
    }
    const { conv, group, with: other } = ref;
    if (this.store.positions.membership(me, conv) === undefined) {
      return void peer.send(errorFrame(Code.NOT_PERMITTED, group !== undefined ? 'only members mark a group read' : 'no conversation with this account', r));
    }
    const last = this.newest(conv);
    const before = this.position(conv, me);
    const seq = Math.min(r.seq as number, last);
    const key = refKeys(ref);
    if (seq <= before) {
      this.counters.unchanged++;
      return void peer.send(noticeFrame('chat', 'read', { ...key, seq: before }, r.callback));
    }
    this.store.states.put(readAddress(conv, me), seq);
    this.counters.marked++;
    this.afterDurable(() => {
      peer.send(noticeFrame('chat', 'read', { ...key, seq }, r.callback));
      // The reader's other devices.
      this.sendTo(me, noticeFrame('chat', 'read', { account: me, ...key, seq }), peer.id);
      if (other !== undefined) {
        this.sendTo(other, noticeFrame('chat', 'read', { account: me, with: me, seq }));
      } else {
        const m = this.members.of(group!);
        if (m.size > LIVE_GROUP_MAX) return;
        const frame = noticeFrame('chat', 'read', { account: me, group, seq });
        for (const a of m) if (a !== me) this.sendTo(a, frame);
      }
    }, lost);
  }

  /** The added keys of a `history` answer of `conv` whose page holds the records at `offsets`. */
  annotate(conv: ConvId, offsets: number[]): Record<string, unknown> {
    if (conv.startsWith('d:')) {
      const reads: Record<string, number> = {};
      for (const a of conv.slice(2).split(':')) {
        const p = this.position(conv, a);
        if (p > 0) reads[a] = p;
      }
      return { reads };
    }
    if (!conv.startsWith('g:')) return {};
    const members = this.members.of(conv.slice(2));
    const prefix = readAddress(conv, '');
    const positions: Array<[string, number]> = [];
    let after: string | undefined;
    for (let scanned = 0; scanned < READS_SCAN_MAX;) {
      const page = this.store.states.list(prefix, after, 1000);
      for (const k of page) {
        const account = k.slice(prefix.length);
        if (!members.has(account)) continue;
        const v = this.store.states.get(k);
        if (typeof v === 'number' && v > 0) positions.push([account, v]);
      }
      scanned += page.length;
      if (page.length < 1000) break;
      after = page[page.length - 1];
    }
    positions.sort((x, y) => y[1] - x[1]);
    const readCounts = offsets.map((o) => {
      // Sorted descending: the count is the length of the prefix with position >= o.
      let lo = 0;
      let hi = positions.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (positions[mid]![1] >= o) lo = mid + 1; else hi = mid;
      }
      return lo;
    });
    return { readCounts, reads: Object.fromEntries(positions.slice(0, READS_SHOWN)) };
  }

  stats(): Record<string, number> { return { ...this.counters }; }

  private sendTo(account: string, frame: string, except?: number): void {
    this.counters.frames += this.out.toAccount(this.peers, account, frame, except);
  }
}
