/** Runs test/support/migrate-v1-writer.ts (compiled) as a child process and collects its acknowledgements. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

export interface Writer {
  child: ChildProcess;
  /** Acknowledged lsns per partition, in the order printed. */
  acked: Map<number, number[]>;
  total(): number;
  /** Resolves once at least `n` acknowledgements were printed (rejects if the child exits first). */
  waitFor(n: number): Promise<void>;
  /** SIGKILL, then resolves when the child is gone. */
  kill(): Promise<void>;
  stderr(): string;
}

export function startWriter(dir: string, policy: string, partitions = 1, checkpointEvery = 0): Writer {
  const script = path.join(__dirname, 'migrate-v1-writer.js');
  const child = spawn(process.execPath, [script, dir, policy, String(partitions), String(checkpointEvery)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, IMGC_LOG_LEVEL: 'silent' },
  });
  const acked = new Map<number, number[]>();
  let count = 0;
  let partial = '';
  let err = '';
  let exited = false;
  const waiters: { n: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (err += s));
  child.stdout!.on('data', (s: string) => {
    const lines = (partial + s).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const [p, lsn] = line.split(' ').map(Number) as [number, number];
      let list = acked.get(p);
      if (list === undefined) acked.set(p, (list = []));
      list.push(lsn);
      count++;
    }
    for (const w of waiters.splice(0)) {
      if (count >= w.n) w.resolve();
      else waiters.push(w);
    }
  });
  const gone = new Promise<void>((resolve) => child.on('exit', () => {
    exited = true;
    for (const w of waiters.splice(0)) w.reject(new Error(`writer exited early: ${err}`));
    resolve();
  }));
  return {
    child,
    acked,
    total: () => count,
    waitFor: (n) => new Promise<void>((resolve, reject) => {
      if (count >= n) resolve();
      else if (exited) reject(new Error(`writer exited early: ${err}`));
      else waiters.push({ n, resolve, reject });
    }),
    kill: async () => {
      child.kill('SIGKILL');
      await gone;
    },
    stderr: () => err,
  };
}
