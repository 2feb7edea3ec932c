/**
 * Wire types as the client sees them. The base frames (init, notice, error, request, method) are
 * the server's own (src/protocol/frames.ts); the shapes below name what the notices carry.
 */
import type { ErrorFrame, InitFrame, Method, NoticeFrame, Request } from '../protocol/frames.js';
import type { ImgcError } from './errors.js';

export type { ErrorFrame, InitFrame, Method, NoticeFrame, Request };

/** How a received message was carried (clients with end-to-end encryption on). */
export interface E2EInfo {
  /** Whether it came encrypted end to end (and was read, unless `error`). */
  encrypted: boolean;
  /** Why an encrypted record could not be read (its `msg` is then null). */
  error?: ImgcError;
}

/** A direct message: `{"msg","from","to","method":{"cat":"chat","act":"chat"},"type":"message","seq"}`. */
export interface DirectMessage {
  type: 'message';
  msg: unknown;
  from: string;
  to: string;
  method: Method;
  seq?: number;
  /** How it was carried (clients with end-to-end encryption on): encrypted and read, plain, or unreadable. */
  e2e?: E2EInfo;
}

/** A group message: as a direct one with `group` and the top-level `cat: "group"`. */
export interface GroupMessage extends DirectMessage {
  group: string;
  cat: 'group';
}

export type MessageFrame = DirectMessage | GroupMessage;

/** Any frame a server sends. */
export type ServerFrame = InitFrame | NoticeFrame | ErrorFrame | MessageFrame;

/** The `limited` notice: older group messages were not delivered at sign-in (page them with `history`). */
export interface LimitedNotice { group: string; limited: true; before: number; epoch: string }

/** A group record (`detail`): the server's own type. */
export type { GroupRecord } from '../actors/group-state.js';

/** One page of `history`. */
export interface HistoryPage {
  with?: string;
  group?: string;
  epoch: string;
  first: number;
  last: number;
  more: boolean;
  /** Oldest first, each exactly as delivered live. */
  messages: Array<MessageFrame | NoticeFrame>;
}

/** The answer to `reg`. */
export interface RegAnswer { amount?: string; account?: string; base?: string; expires?: number; done?: boolean; [k: string]: unknown }
/** The answer to `token`. */
export interface TokenAnswer { token: string; issuer: string; exp: number }

/** The `update` keys of a group. */
export type { UpdateKey as GroupUpdateKey } from '../actors/group-state.js';

export function isMessage(f: ServerFrame): f is MessageFrame {
  return (f as { type?: string }).type === 'message';
}
export function isGroupMessage(f: MessageFrame): f is GroupMessage {
  return typeof (f as GroupMessage).group === 'string';
}
