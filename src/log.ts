/**
 * The one logger of the service: pino, one JSON line per event, to stdout.
 * Child loggers carry the thread, connection or request they concern.
 */
import pino, { type Logger } from 'pino';
import { threadId } from 'node:worker_threads';

export type { Logger };

let root: Logger = pino({
  level: process.env.IMGC_LOG_LEVEL ?? 'info',
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
