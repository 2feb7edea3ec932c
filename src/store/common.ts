/**
 * Small pieces every `Store` backend shares, so that they agree on the details the contract suite
 * checks (how an epoch looks, what a stored entry carries, what a closed store says).
 */
import { randomBytes } from 'node:crypto';
import { StoreError, type LogEntry, type NewEntry } from './ports';

/** A fresh epoch: random, so two stores (or one recreated) never share one by accident. */
export function newEpoch(): string {
  return randomBytes(12).toString('base64url');
}

/** The entry as stored: `mid` only when given, so entries compare alike whatever the backend. */
export function toLogEntry(entry: NewEntry, offset: number): LogEntry {
  const e: LogEntry = { conv: entry.conv, at: entry.at, from: entry.from, head: entry.head, tail: entry.tail, offset };
  if (entry.mid !== undefined) e.mid = entry.mid;
  return e;
}

/**
 * An offset handed to `append` must be one the store can key and range over: a positive safe
 * integer below the open end of its ranges. Anything else is the caller's bug, not the data's.
 */
export function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset <= 0 || offset >= Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`append: offset ${String(offset)} is not a positive safe integer below 2^53 - 1`);
  }
}

/** Whether an append is found again by `findMid` (server notices have no sender to key on). */
export function hasMidKey(entry: NewEntry): entry is NewEntry & { from: string; mid: string } {
  return entry.from !== null && entry.mid !== undefined;
}

export function closedError(): StoreError {
  return new StoreError('store is closed', 'closed');
}

/** States are plain JSON replaced whole: a copy through JSON, so later changes by the caller do not leak in. */
export function jsonCopy(state: unknown): string {
  const s = JSON.stringify(state);
  if (s === undefined) throw new TypeError('actor state is not JSON data');
  return s;
}
