/**
 * Typed errors of the client SDK. A refusal by the server carries the server's code (see
 * src/protocol/codes.ts and docs/protocol.md); failures the client detects itself use the
 * negative codes of `ClientCode`.
 */
import { Code, type ErrorCode } from '../protocol/codes.js';
import type { ErrorFrame } from '../protocol/frames.js';

export { Code, type ErrorCode };

/** Codes of failures detected by the client (never sent by a server). */
export const ClientCode = {
  /** `close()` was called while the request was waiting. */
  CLOSED: -1,
  /** The connection dropped after a request that is not safe to repeat (`group.create`) was sent. */
  CONNECTION_LOST: -2,
  /** No answer within the request's timeout. */
  TIMEOUT: -3,
  /** The server answered something the client could not understand. */
  BAD_ANSWER: -4,
  /** End-to-end: a device key of the peer is not vouched for by its account (the only ones it has, so nothing was sent). */
  E2E_BAD_VOUCH: -5,
  /** End-to-end: a message that cannot be decrypted or verified here (tampered, not for this device, keys gone). */
  E2E_UNREADABLE: -6,
  /** End-to-end: a conversation that was encrypted now has a member without device keys; not sent in plaintext. */
  E2E_NOT_ENCRYPTED: -7,
} as const;
export type ClientErrorCode = (typeof ClientCode)[keyof typeof ClientCode];

export class ImgcError extends Error {
  override readonly name = 'ImgcError';
  constructor(
    /** The server's error code (41400…45010), or a negative `ClientCode`. */
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    /** The error frame, when the server sent one. */
    readonly frame?: ErrorFrame & { retryAfterMs?: number },
  ) {
    super(`${message} (${code})`);
  }

  /** The error frame a server sent, as an ImgcError. */
  static fromFrame(f: ErrorFrame & { retryAfterMs?: number }): ImgcError {
    return new ImgcError(f.code, f.error, f);
  }
}
