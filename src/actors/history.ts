/**
 * `history`: a page of a direct conversation or of a group, backwards or forwards from a position,
 * for a new device, a reinstalled client or a scrolled-up window. Only the two accounts read a
 * direct conversation; only current members read a group (all that is retained; an account that
 * left, was removed or deported reads nothing of it any more).
 */
import { Code, type ErrorCode } from '../protocol/codes';
import { noticeFrame, renderFrame, type Request } from '../protocol/frames';
import { StoreError, type ConvId, type ConversationLog, type LogEntry, type Positions } from '../store/ports';
import { conversationOf, refKeys } from './conversation-ref';
import { isChangeRecord } from './edits';
import { renderOwnFrame } from './own';

export const HISTORY_DEFAULT = 50;
export const HISTORY_MAX = 100;
/** A page stops growing past this many bytes of frames (and says `more`), or less where the socket's bound is lower. */
export const HISTORY_BYTES = 1024 * 1024;

export type HistoryAnswer = { ok: true; frame: string } | { ok: false; code: ErrorCode; error: string };

/** Added keys of an answer, from the conversation and the offsets of its page (read receipts: src/actors/receipts.ts). */
export type HistoryAnnotate = (conv: ConvId, offsets: number[]) => Record<string, unknown>;

/**
 * Damaged records are not in the page (the store skips them, counts and logs them); a conversation
 * the store cannot read at all (a corrupt page) answers 41401, and the process goes on.
 */
export function readHistory(log: ConversationLog, positions: Positions, epoch: string, account: string, r: Request, maxBytes = HISTORY_BYTES, annotate?: HistoryAnnotate): HistoryAnswer {
  try {
    return readPage(log, positions, epoch, account, r, maxBytes, annotate);
  } catch (e) {
    if (!(e instanceof StoreError) || (e.code !== 'corrupt' && e.code !== 'damaged')) throw e;
    return { ok: false, code: Code.INTERNAL, error: 'this conversation could not be read; the operators were told' };
  }
}

function readPage(log: ConversationLog, positions: Positions, epoch: string, account: string, r: Request, maxBytes: number, annotate?: HistoryAnnotate): HistoryAnswer {
  const pageBytes = Math.min(HISTORY_BYTES, maxBytes);
  const ref = conversationOf(account, r);
  if (ref === undefined) return { ok: false, code: Code.MISSING_PARAMS, error: 'history needs one of "with" (an account) or "group" (a group id)' };
  if (r.before !== undefined && r.after !== undefined) return { ok: false, code: Code.UNEXPECTED_INPUT, error: 'give "before" or "after", not both' };
  const { conv, with: peer } = ref;
  if (ref.group !== undefined && positions.membership(account, conv) === undefined) {
    // The same answer for a group that does not exist: non-members learn nothing of it.
    return { ok: false, code: Code.NOT_PERMITTED, error: 'only members read a group\'s history' };
  }
  const limit = Math.max(1, Math.min(HISTORY_MAX, typeof r.limit === 'number' ? r.limit : HISTORY_DEFAULT));
  const forward = r.after !== undefined;
  const q = forward
    ? { conv, after: r.after as number, limit: limit + 1, direction: 'forward' as const }
    : { conv, ...(r.before !== undefined ? { before: r.before as number } : {}), limit: limit + 1, direction: 'backward' as const };
  let page = log.read(q);
  let more = page.length > limit;
  if (more) page = forward ? page.slice(0, limit) : page.slice(1);
  const frames: string[] = [];
  let bytes = 0;
  /** Records of the page covered (edit and delete records are covered but not shown: the originals show their latest version). */
  let used = 0;
  for (const e of forward ? page : [...page].reverse()) {
    if (isChangeRecord(e)) { used++; continue; }
    // The reader's own messages carry the own-device marker.
    const f = e.from === account ? renderOwnFrame(e, recipientOf(e, account, peer), e.offset) : renderFrame(e, recipientOf(e, account, peer), e.offset);
    if (frames.length > 0 && bytes + f.length > pageBytes) { more = true; break; }
    bytes += f.length;
    frames.push(f);
    used++;
  }
  if (!forward) frames.reverse();
  const kept = forward ? page.slice(0, used) : page.slice(page.length - used);
  const msg = {
    ...refKeys(ref),
    epoch,
    first: kept[0]?.offset ?? null,
    last: kept.at(-1)?.offset ?? null,
    more,
    ...annotate?.(conv, kept.map((e) => e.offset)),
    messages: [] as unknown[],
  };
  // The frames are already JSON: spliced into the answer, never parsed and serialized again.
  const shell = noticeFrame('chat', 'history', msg, r.callback);
  return { ok: true, frame: shell.replace('"messages":[]', () => `"messages":[${frames.join(',')}]`) };
}

/** A direct message reads as it was sent: to the other account when the reader sent it. */
function recipientOf(e: LogEntry, reader: string, peer: string | undefined): string {
  return peer !== undefined && e.from === reader ? peer : reader;
}
