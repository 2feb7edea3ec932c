/**
 * Helpers for the history tests: reading a sign-in backlog until it goes quiet, asking `history`
 * and paging a conversation to its end, sending many messages with `mid` and waiting for their
 * answers.
 */
import { expect } from 'chai';
import { Client, isNotice, sleep, type Frame } from './client';

/** Takes every frame until none has arrived for `quietMs` (at most `maxMs` in all). */
export async function drainQuiet(c: Client, quietMs = 400, maxMs = 30_000): Promise<Frame[]> {
  const out: Frame[] = [];
  const end = Date.now() + maxMs;
  for (;;) {
    const got = await c.collect(quietMs);
    out.push(...got);
    if (got.length === 0 || Date.now() > end) return out;
  }
}

/** Takes frames until `n` of them match `pred` (the others are kept too, in arrival order). */
export async function takeUntil(c: Client, n: number, pred: (f: Frame) => boolean, timeoutMs = 20_000): Promise<Frame[]> {
  const out: Frame[] = [];
  let hits = 0;
  const end = Date.now() + timeoutMs;
  while (hits < n) {
    const f = await c.next(() => true, Math.max(1, end - Date.now()), `frame ${hits + 1} of ${n}`);
    out.push(f);
    if (pred(f)) hits++;
  }
  return out;
}

let cbs = 0;

/** One `history` request; resolves with its answer (a notice, or an error frame). */
export async function history(c: Client, r: Frame, timeoutMs = 10_000): Promise<Frame> {
  const callback = `h${++cbs}`;
  c.request({ cat: 'chat', act: 'history', ...r, callback });
  return c.next((f) => (f.type === 'notice' && f.method?.act === 'history' && f.method?.callback === callback)
    || (f.type === 'error' && f.request?.callback === callback), timeoutMs, `history answer ${callback}`);
}

/** `msg` of a successful history answer (fails the test on an error frame). */
export async function historyPage(c: Client, r: Frame): Promise<Frame> {
  const f = await history(c, r);
  expect(f.type, JSON.stringify(f).slice(0, 300)).to.equal('notice');
  return f.msg as Frame;
}

/**
 * Pages a conversation (`{with}` or `{group}`) to its end: backwards from `start` (exclusive; the
 * newest when undefined) or forwards from `start` (default 0). Returns every message, oldest first.
 */
export async function pageAll(c: Client, conv: Frame, dir: 'backward' | 'forward', start?: number, limit = 100): Promise<{ messages: Frame[]; pages: number }> {
  const messages: Frame[] = [];
  let pos = dir === 'forward' ? (start ?? 0) : start;
  let pages = 0;
  for (;;) {
    const q: Frame = { ...conv, limit };
    if (dir === 'forward') q.after = pos;
    else if (pos !== undefined) q.before = pos;
    const m = await historyPage(c, q);
    pages++;
    expect(m.messages.length, 'a page holds at most the limit').to.be.at.most(Math.min(limit, 100));
    if (dir === 'forward') messages.push(...(m.messages as Frame[]));
    else messages.unshift(...(m.messages as Frame[]));
    if (!m.more) return { messages, pages };
    expect(m.messages.length, 'more: true on an empty page').to.be.greaterThan(0);
    pos = dir === 'forward' ? m.last as number : m.first as number;
    if (pages > 10_000) throw new Error('history never ended');
  }
}

/**
 * Sends `count` requests made by `make(i)` (each with a `mid`) in batches of `batch`, waiting for
 * each batch's answers (notices matching `answer`); returns the acknowledged mids.
 */
export async function sendAcked(c: Client, count: number, make: (i: number) => Frame, answer: (f: Frame) => boolean, batch = 200, timeoutMs = 20_000): Promise<string[]> {
  const acked: string[] = [];
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    for (let k = 0; k < n; k++) c.request(make(i + k));
    const got = await c.nextN(n, (f) => answer(f) || f.type === 'error', timeoutMs, 'answers');
    for (const f of got) {
      expect(f.type, JSON.stringify(f).slice(0, 300)).to.equal('notice');
      acked.push(String(f.msg.mid));
    }
  }
  return acked;
}

export const isDirectAnswer = isNotice('chat', 'chat');
export const isGroupChatAnswer = isNotice('group', 'chat');
export const isLimited = isNotice('group', 'limited');

/** The seqs of the frames that carry one, checked to rise strictly. */
export function expectRisingSeq(frames: Frame[], what = 'seq'): number[] {
  const seqs = frames.filter((f) => f.seq !== undefined).map((f) => f.seq as number);
  for (let i = 1; i < seqs.length; i++) {
    if (!(seqs[i]! > seqs[i - 1]!)) expect.fail(`${what}: ${seqs[i]} after ${seqs[i - 1]} at ${i}`);
  }
  return seqs;
}

export { sleep };
