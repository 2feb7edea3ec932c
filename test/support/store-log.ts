/** Test helpers of the store suites: temp dirs and a pino root logger whose lines can be inspected. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { logger, setRootLogger, type Logger } from '../../src/log';

export interface LogLine {
  level: number;
  msg?: string;
  [k: string]: unknown;
}

export interface Captured {
  lines: LogLine[];
  /** Lines at warn (40) or above. */
  warnings(): LogLine[];
  restore(): void;
}

/** Replaces the root logger with one that records every line (instead of printing it). */
export function captureLogs(): Captured {
  const prev: Logger = logger();
  const lines: LogLine[] = [];
  setRootLogger(pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) }));
  return {
    lines,
    warnings: () => lines.filter((l) => l.level >= 40),
    restore: () => setRootLogger(prev),
  };
}

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `imgc-${tag}-`));
}

export function rm(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Copies a directory tree (test fixtures only). */
export function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
}

/**
 * Registers, around each test of the calling `describe`: beforeEach a fresh temp dir `imgc-<tag>-…`
 * and the root logger captured, both handed to `use`; afterEach the logger restored and the dir removed.
 */
export function scratchEachTest(tag: string, use: (dir: string, logs: Captured) => void): void {
  let dir: string;
  let logs: Captured;
  beforeEach(() => {
    dir = tmpDir(tag);
    logs = captureLogs();
    use(dir, logs);
  });
  afterEach(() => {
    logs.restore();
    rm(dir);
  });
}
