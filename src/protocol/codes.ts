/**
 * Error codes of the W3OS IMGC wire protocol, in one place.
 * The first six are the ones deployed clients already know; the rest are this service's own
 * and use the same 4xxxx space so a legacy client shows them as ordinary errors.
 */
export const Code = {
  /** Malformed frame: not JSON, not an object, too large, unknown cat/act. */
  INVALID_REQUEST: 41400,
  /** The server could not process data it holds (should never reach a client). */
  INTERNAL: 41401,
  /** A required parameter is absent. */
  MISSING_PARAMS: 44001,
  /** Not a valid SS58 address (checksum or length). */
  INVALID_ACCOUNT: 44009,
  /** No group with that id (or not a well-formed id). */
  INVALID_GROUP: 44100,
  /** A parameter is present but of the wrong type or out of range; also a size limit (group size, block list, detail size). */
  UNEXPECTED_INPUT: 44744,
  /** The requester may not do this (membership, manager, block list, permit). */
  NOT_PERMITTED: 44501,
  /** The spam token does not match this connection's. */
  BAD_SPAM: 44002,
  /** A request other than `active` before sign-in. */
  NOT_ACTIVE: 44003,
  /** Signed mode: `sig` missing or not a valid signature of the spam by `acc`. */
  BAD_SIGNATURE: 44004,
  /** Too many requests on this connection in a short time; also a quota (groups per hour, with `retryAfterMs`; groups in total). */
  RATE_LIMITED: 44029,
  /** The server is busy or restarting a part; the request was not executed and may be retried. */
  UNAVAILABLE: 45003,
  /** The store cannot take writes now (the disk is full): the request was not executed; retry later. */
  STORAGE_FULL: 45007,
  /** Verification by payment is not configured on this server. */
  VERIFY_DISABLED: 45010,
} as const;

export type ErrorCode = (typeof Code)[keyof typeof Code];
