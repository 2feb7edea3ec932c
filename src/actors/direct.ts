/**
 * The direct-message actor's decision: a `chat` (or `to`) from one account to another becomes one
 * record in the log of their conversation, for the receiver to read live or at its next sign-in.
 * Like the group actor's, it is a pure decision: the delivery actor stores and pushes it.
 */
import { directTemplate, noticeFrame, type Request } from '../protocol/frames';
import { directConv } from '../store/ports';
import type { Post } from './envelopes';

export function decideDirect(from: string, conn: number, r: Request): Post {
  const to = r.to as string;
  const post: Post = { t: 'post', conv: directConv(from, to), tpl: directTemplate(from, JSON.stringify(r.msg)), from, to: [to], origin: conn };
  if (typeof r.mid === 'string') post.mid = r.mid;
  // With a client message id (or a callback) the sender hears back once the record is durable.
  if (r.mid !== undefined || r.callback !== undefined) {
    post.ackTo = { conn, frame: noticeFrame('chat', r.act, { to, mid: r.mid ?? null }, r.callback) };
  }
  return post;
}
