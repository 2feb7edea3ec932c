/**
 * Edit and delete (added): `{"cat":"chat","act":"edit","with"|"group":…,"seq":<offset of the
 * original>,"msg":…}` and `{"cat":"chat","act":"delete","with"|"group":…,"seq":…}`, decided on the
 * delivery thread against the conversation's log (the original record) and, for a group, its
 * stored state (membership, manager): the group actor's every change is stored by this thread in
 * the turn its output arrives, so the stored state is the group as last decided.
 *
 * A change is a new record in the same log, delivered live and at sign-in like a message:
 *   edit:   {"type":"notice","msg":<new>,"from",("group"),"to","edit":<seq>,"method":{"cat":"chat","act":"edit"},"seq"}
 *   delete: {"type":"notice","from",("group"),"to","delete":<seq>,"method":{"cat":"chat","act":"delete"},"seq"}
 * and the original record is rewritten in place (`log.redact`): after an edit it holds the latest
 * version with `"edited":<seq of the edit>`; after a delete it is a tombstone without `msg`, with
 * `"deleted":<seq of the delete>`, and every earlier edit of it loses its `msg` too, so the content
 * is in no record any more. Who may: the sender edits and deletes; a group's manager deletes too.
 */
import { randomBytes } from 'node:crypto';
import { Code, type ErrorCode } from '../protocol/codes';
import { noticeFrame, renderFrame, type Request, type Template } from '../protocol/frames';
import type { ConvId, ConversationLog, LogEntry, Store } from '../store/ports';
import { conversationOf, refKeys } from './conversation-ref';
import { groupAddress } from './address';
import type { Post } from './envelopes';
import type { GroupRecord } from './group-state';

export type ChangeAct = 'edit' | 'delete';

/** A change decided: what it records and rewrites, as plain data (it travels in a ledger entry in a cluster). */
export interface ChangeMade { ok: true; act: ChangeAct; conv: ConvId; original: LogEntry; post: Post; answer: Record<string, unknown>; msgJson?: string }

export type ChangeDecision = { ok: false; code: ErrorCode; error: string } | ChangeMade;

const TOMBSTONE = /,"deleted":\d+$/;

/** An edit or delete record (never shown by `history`: the original shows its latest version). */
export function isChangeRecord(e: Template): boolean {
  return e.tail.startsWith(',"edit":') || e.tail.startsWith(',"delete":');
}

/** A deleted message (or an edit of one): no content left, not delivered at sign-in. */
export function isTombstone(e: Template): boolean {
  return TOMBSTONE.test(e.tail);
}

const fail = (code: ErrorCode, error: string): ChangeDecision => ({ ok: false, code, error });

/** Decides an `edit` or `delete` by `account` (on connection `conn`). */
export function decideChange(store: Store, account: string, conn: number, r: Request): ChangeDecision {
  const act = r.act as ChangeAct;
  const ref = conversationOf(account, r);
  if (ref === undefined) return fail(Code.MISSING_PARAMS, `${act} needs one of "with" (an account) or "group" (a group id)`);
  const { conv, group, with: peer } = ref;
  const seq = r.seq as number;
  let to: string[];
  let manager = false;
  if (group !== undefined) {
    const g = store.states.get(groupAddress(group)) as GroupRecord | undefined;
    // The same answer for a group that does not exist: non-members learn nothing of it.
    if (g === undefined || !Array.isArray(g.group) || !g.group.includes(account)) return fail(Code.NOT_PERMITTED, `only members may ${act} in a group`);
    to = g.group.filter((a) => a !== account);
    manager = g.manager === account;
  } else {
    to = peer === account ? [] : [peer];
  }
  const original = seq > 0 ? store.log.read({ conv, after: seq - 1, before: seq + 1, limit: 1, direction: 'forward' })[0] : undefined;
  if (original === undefined || original.from === null || isChangeRecord(original)) return fail(Code.UNEXPECTED_INPUT, `no message with seq ${seq} in this conversation`);
  if (isTombstone(original)) return fail(Code.UNEXPECTED_INPUT, `message ${seq} was deleted`);
  if (act === 'edit' && original.from !== account) return fail(Code.NOT_PERMITTED, 'only the sender may edit a message');
  if (act === 'delete' && original.from !== account && !manager) return fail(Code.NOT_PERMITTED, 'only the sender (or the group\'s manager) may delete a message');
  const where = `"from":${JSON.stringify(account)}${group !== undefined ? `,"group":${JSON.stringify(group)}` : ''},"to":`;
  const msgJson = act === 'edit' ? JSON.stringify(r.msg) : undefined;
  const tpl: Template = act === 'edit'
    ? { head: `{"type":"notice","msg":${msgJson},${where}`, tail: `,"edit":${seq},"method":{"cat":"chat","act":"edit"}` }
    : { head: `{"type":"notice",${where}`, tail: `,"delete":${seq},"method":{"cat":"chat","act":"delete"}` };
  const post: Post = { t: 'post', conv, tpl, from: account, to, origin: conn };
  const answer = { ...refKeys(ref), seq };
  return { ok: true, act, conv, original, post, answer, ...(msgJson !== undefined ? { msgJson } : {}) };
}

/** Rewrites the original (and, on delete, its earlier edits) once the change is stored at `offset`. */
export function applyChange(log: ConversationLog, d: ChangeMade, offset: number): void {
  const { conv, original } = d;
  if (d.act === 'edit') {
    log.redact(conv, original.offset, rewrite(original, (o) => { o.msg = JSON.parse(d.msgJson!) as unknown; o.edited = offset; }));
    return;
  }
  const scrub = (o: Record<string, unknown>): void => { delete o.msg; delete o.edited; o.deleted = offset; };
  log.redact(conv, original.offset, rewrite(original, scrub));
  // Every edit of it carries a version of the content: scrubbed too (edits come after the original).
  const mark = `,"edit":${original.offset},`;
  let after = original.offset;
  for (;;) {
    const page = log.read({ conv, after, before: offset, limit: 500, direction: 'forward' });
    for (const e of page) if (e.tail.startsWith(mark) && !isTombstone(e)) log.redact(conv, e.offset, rewrite(e, scrub));
    if (page.length < 500) return;
    after = page[page.length - 1]!.offset;
  }
}

/** The requester's answer: `{"with"|"group","seq":<original>,"edit"|"delete":<offset of the change>}`. */
export function changeAnswer(d: ChangeMade, offset: number, callback: string | undefined): string {
  return noticeFrame('chat', d.act, { ...d.answer, [d.act]: offset }, callback);
}

/** A record's frame changed by `change`, as a template again (split at its recipient). */
function rewrite(e: LogEntry, change: (o: Record<string, unknown>) => void): Template {
  const o = JSON.parse(renderFrame(e, '', 0)) as Record<string, unknown>;
  delete o.seq;
  const sentinel = `\u0000to:${randomBytes(9).toString('base64url')}`;
  o.to = sentinel;
  change(o);
  const s = JSON.stringify(o);
  const mark = JSON.stringify(sentinel);
  const i = s.indexOf(mark);
  return { head: s.slice(0, i), tail: s.slice(i + mark.length, -1) };
}
