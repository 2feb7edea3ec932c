/**
 * Wire types of the W3OS IMGC protocol and the builders of every frame the server sends.
 * Shapes follow ../shared/reference/w3os-wire.md exactly; fields this service adds
 * (`seq`, `mid`, `sig`) are extra keys that legacy clients ignore.
 */
import type { ErrorCode } from './codes';
import { echoable } from './schema';
import type { Request } from './request';

export type Cat = 'chat' | 'group' | 'vertify' | 'keys';

export type { Request } from './request';

export interface Method {
  cat: string;
  act: string;
  callback?: string;
}

export interface InitFrame { spam: string; act: 'init' }

export interface NoticeFrame {
  type: 'notice';
  msg: unknown;
  method: Method;
  from?: string;
  group?: string;
  seq?: number;
}

export interface ErrorFrame {
  type: 'error';
  error: string;
  code: ErrorCode;
  method: { cat: string; act: string };
  request: unknown;
}

export function initFrame(spam: string): string {
  return JSON.stringify({ spam, act: 'init' } satisfies InitFrame);
}

export function noticeFrame(cat: string, act: string, msg: unknown, callback?: string): string {
  const method: Method = callback === undefined ? { act, cat } : { act, cat, callback };
  return JSON.stringify({ type: 'notice', msg, method } satisfies NoticeFrame);
}

/** The text of error 45007 (Code.STORAGE_FULL). */
export const STORAGE_FULL_TEXT = 'the server cannot store anything now; retry later';

/**
 * The error a requester gets instead of `answer` (a notice that would have confirmed its request)
 * when what the request changed was lost: the request it echoes is rebuilt from the answer
 * (`cat`, `act`, `callback`, and the `mid`, `to` or `id` the answer names).
 */
export function refusedAnswer(answer: string, code: ErrorCode, error: string): string {
  let cat: unknown;
  let act: unknown;
  const r: Record<string, unknown> = {};
  try {
    const f = JSON.parse(answer) as { method?: Record<string, unknown>; msg?: unknown };
    cat = f.method?.cat;
    act = f.method?.act;
    if (typeof f.method?.callback === 'string') r.callback = f.method.callback;
    if (f.msg !== null && typeof f.msg === 'object' && !Array.isArray(f.msg)) {
      const m = f.msg as Record<string, unknown>;
      for (const k of ['mid', 'to', 'id']) if (typeof m[k] === 'string') r[k] = m[k];
    }
  } catch {
    // Not JSON (never, for answers this server makes): the error names no request.
  }
  return errorFrame(code, error, { ...(typeof cat === 'string' ? { cat } : {}), ...(typeof act === 'string' ? { act } : {}), ...r });
}

/** `extra`: added top-level keys (e.g. `retryAfterMs` of 45003 for a full sign-in queue). */
export function errorFrame(code: ErrorCode, error: string, request: unknown, extra?: Record<string, unknown>): string {
  const r = (request !== null && typeof request === 'object' && !Array.isArray(request)) ? request as Request : undefined;
  const method = {
    cat: typeof r?.cat === 'string' ? r.cat : 'chat',
    act: typeof r?.act === 'string' ? r.act : 'unknown',
  };
  const frame = { type: 'error', error, code, method, request: echoable(r ?? null) } satisfies ErrorFrame;
  return JSON.stringify(extra === undefined ? frame : { ...frame, ...extra });
}

/**
 * A message or notice for many recipients, serialized once.
 * The per-recipient frame is `head + JSON(to) + tail + seqSuffix(seq)`: only the recipient
 * and its sequence number differ, so the payload is never stringified twice.
 */
export interface Template {
  head: string;
  tail: string;
}

/** Direct message: `{"msg","from","to","method":{"cat":"chat","act":"chat"},"type":"message"}`. */
export function directTemplate(from: string, msgJson: string): Template {
  return {
    head: `{"msg":${msgJson},"from":${JSON.stringify(from)},"to":`,
    tail: `,"method":{"cat":"chat","act":"chat"},"type":"message"`,
  };
}

/**
 * Group chat message, as the first service sent it:
 * `{"msg","from","group","to","method":{"act":"message","cat":"group"},"cat":"group","type":"message"}`.
 */
export function groupTemplate(from: string, group: string, msgJson: string): Template {
  return {
    head: `{"msg":${msgJson},"from":${JSON.stringify(from)},"group":${JSON.stringify(group)},"to":`,
    tail: `,"method":{"act":"message","cat":"group"},"cat":"group","type":"message"`,
  };
}

/** Group notice (act `notice`): carries the sender's `msg` as is, with `from` and `group`. */
export function groupNoticeTemplate(from: string, group: string, msgJson: string): Template {
  return {
    head: `{"type":"notice","msg":${msgJson},"from":${JSON.stringify(from)},"group":${JSON.stringify(group)},"to":`,
    tail: `,"method":{"act":"notice","cat":"group"}`,
  };
}

/** A group event notice (create, join, leave, …) sent to members; `msg` is the event body. */
export function eventTemplate(act: string, msg: unknown): Template {
  return {
    head: `{"type":"notice","msg":${JSON.stringify(msg)},"to":`,
    tail: `,"method":{"act":${JSON.stringify(act)},"cat":"group"}`,
  };
}

/** A verification notice (`done`), kept for the account like any other when it is away. */
export function vertifyTemplate(act: string, msg: unknown): Template {
  return {
    head: `{"type":"notice","msg":${JSON.stringify(msg)},"to":`,
    tail: `,"method":{"act":${JSON.stringify(act)},"cat":"vertify"}`,
  };
}

/** The bytes a recipient receives: the template closed with its recipient and sequence number. */
export function renderFrame(t: Template, to: string, seq: number): string {
  return `${t.head}${JSON.stringify(to)}${t.tail},"seq":${seq}}`;
}
