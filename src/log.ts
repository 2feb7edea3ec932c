/**
 * The one logger of the service: pino, one JSON line per event, to stdout.
 * Child loggers carry the thread, connection or request they concern.
 */
import pino, { type Logger } from 'pino';
import { threadId } from 'node:worker_threads';

export type { Logger };

/** The levels a setting may name (pino's, plus `silent`). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * The environment's level when it is one; otherwise `info` until the settings are read, which then
 * refuse the bad value with a clear message (pino itself would throw while this module loads).
 */
function initialLevel(): string {
  const l = process.env.IMGC_LOG_LEVEL;
  return l !== undefined && (LOG_LEVELS as readonly string[]).includes(l) ? l : 'info';
}

let root: Logger = pino({
  level: initialLevel(),
  base: { pid: process.pid, thread: threadId },
});

/** Sets the level of every logger made from now on (and the root's). */
export function setLogLevel(level: string): void {
  root.level = level;
}

/** Replaces the root (tests use a silent one). */
export function setRootLogger(l: Logger): void {
  root = l;
}

export function logger(bindings?: Record<string, unknown>): Logger {
  return bindings ? root.child(bindings) : root;
}
