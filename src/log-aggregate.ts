/**
 * Aggregated log lines for warnings that can repeat once per event (a reconnect loop, a restart, a
 * refusal): the first of a key is logged at once; the ones that follow within `intervalMs` are only
 * counted, and one line per interval reports them (`repeated`: how many, `intervalMs`) with the
 * fields of the last. A flood of N events in T ms writes at most 1 + T / intervalMs lines.
 *
 *   const warnEvery = every('chain connection lost', 10_000);
 *   warnEvery(log, { err }, 'connection lost');
 */
import type { Logger } from './log';

type Level = 'warn' | 'error' | 'info';

interface Window {
  timer: NodeJS.Timeout;
  count: number;
  log: Logger;
  level: Level;
  obj: Record<string, unknown>;
  msg: string;
}

const windows = new Map<string, Window>();

export type AggregatedLog = (log: Logger, obj: Record<string, unknown>, msg: string, level?: Level) => void;

/** A logging function for `key` that writes at most one line per `intervalMs` (plus the first). */
export function every(key: string, intervalMs: number): AggregatedLog {
  return (log, obj, msg, level = 'warn') => {
    const w = windows.get(key);
    if (w) {
      w.count++;
      w.log = log;
      w.level = level;
      w.obj = obj;
      w.msg = msg;
      return;
    }
    log[level](obj, msg);
    open(key, intervalMs, log, level, obj, msg);
  };
}

function open(key: string, intervalMs: number, log: Logger, level: Level, obj: Record<string, unknown>, msg: string): void {
  const timer = setTimeout(() => {
    const w = windows.get(key);
    windows.delete(key);
    if (!w || w.count === 0) return;
    w.log[w.level]({ ...w.obj, repeated: w.count, intervalMs }, `${w.msg} (repeated ${w.count} times in ${intervalMs} ms)`);
    // Events kept coming: the next interval aggregates too rather than logging the next one at once.
    open(key, intervalMs, w.log, w.level, w.obj, w.msg);
  }, intervalMs);
  timer.unref();
  windows.set(key, { timer, count: 0, log, level, obj, msg });
}

/** Emits what every open window has counted and forgets them (shutdown, tests). */
export function flushAggregated(): void {
  for (const [key, w] of [...windows]) {
    clearTimeout(w.timer);
    windows.delete(key);
    if (w.count > 0) w.log[w.level]({ ...w.obj, repeated: w.count }, `${w.msg} (repeated ${w.count} times)`);
  }
}
