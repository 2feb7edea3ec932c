/**
 * Which conversation a record belongs to, the same at both ends: the key of a conversation, and
 * the tag every group id of it starts with. A reader checks a record's group against the
 * conversation the server delivered it in, so a record cannot be replayed into another one.
 */
import { utf8, type CiphersuiteImpl } from './mls.js';

/** A conversation: a direct one with an account, or a group. */
export type ConvRef = { with: string } | { group: string };

/** Bytes of a conversation's hash at the start of its group ids (then as many random ones). */
export const TAG_BYTES = 16;

/** The key of the direct conversation of two accounts, whichever side computes it. */
export function pairKey(a: string, b: string): string {
  return a < b ? `p:${a}:${b}` : `p:${b}:${a}`;
}

/** The key of a conversation as `me` names it. */
export function convKey(me: string, conv: ConvRef): string {
  return 'group' in conv ? `g:${conv.group}` : pairKey(me, conv.with);
}

/** The key of the conversation a received frame belongs to. */
export function frameKey(f: { from: string; to: string; group?: string }): string {
  return f.group !== undefined ? `g:${f.group}` : pairKey(f.from, f.to);
}

/** The first bytes of every group id of a conversation: its key's hash. */
export async function convTag(ck: string, cs: CiphersuiteImpl): Promise<Uint8Array> {
  return (await cs.hash.digest(utf8(ck))).subarray(0, TAG_BYTES);
}

/** Whether a group id is one of this conversation's. */
export async function ofConversation(gid: Uint8Array, ck: string, cs: CiphersuiteImpl): Promise<boolean> {
  const tag = await convTag(ck, cs);
  return gid.length === 2 * TAG_BYTES && tag.every((x, i) => x === gid[i]);
}
