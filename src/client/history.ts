/**
 * History paging: the `history` request for a conversation and the walk over its pages, backwards
 * from the newest or forwards from the oldest. Apart from the client so that the cursor rules (which
 * end a page continues from, when the walk stops) are in one place; the client asks for each page.
 */
import type { HistoryPage, MessageFrame, NoticeFrame, Request } from './types.js';

export interface HistoryOptions {
  /** The other account of a direct conversation. */
  with?: string;
  /** A group id. */
  group?: string;
  /** Records per page (1 to 100; server default 50). */
  limit?: number;
  /** 'backward' (default): newest first, from `before` or the newest; 'forward': oldest first, from `after` (default: the oldest). */
  direction?: 'backward' | 'forward';
  before?: number;
  after?: number;
}

/** Fetches one page. */
export type PageFetch = (opts: HistoryOptions) => Promise<HistoryPage>;

function isBackward(opts: HistoryOptions): boolean {
  return (opts.direction ?? 'backward') === 'backward';
}

/** The `history` request for one page. */
export function historyRequest(opts: HistoryOptions): Request {
  const r: Request = { cat: 'chat', act: 'history' };
  if (opts.with !== undefined) r.with = opts.with;
  if (opts.group !== undefined) r.group = opts.group;
  if (opts.before !== undefined) r.before = opts.before;
  if (opts.after !== undefined) r.after = opts.after;
  if (opts.limit !== undefined) r.limit = opts.limit;
  return r;
}

/** The pages from the start `opts` gives until the last (each page's messages oldest first). */
export async function* historyPages(opts: HistoryOptions, fetch: PageFetch): AsyncGenerator<HistoryPage> {
  const backward = isBackward(opts);
  // Forwards starts at the oldest retained record (`after: 0`); backwards at the newest.
  let cursor: number | undefined = backward ? opts.before : (opts.after ?? 0);
  for (;;) {
    const page = await fetch({ ...opts, ...(backward ? { before: cursor, after: undefined } : { after: cursor, before: undefined }) });
    yield page;
    if (!page.more || page.messages.length === 0) return;
    cursor = backward ? page.first : page.last;
  }
}

/** The messages of `pages()` in the order `opts` asks for (newest first backwards). */
export async function* historyMessages(opts: HistoryOptions, pages: () => AsyncIterable<HistoryPage>): AsyncGenerator<MessageFrame | NoticeFrame> {
  const backward = isBackward(opts);
  for await (const page of pages()) {
    const list = backward ? [...page.messages].reverse() : page.messages;
    yield* list;
  }
}
