/**
 * Sign-in verification micro-benchmark (not a test):
 * `npm run build && node dist/bench/verify.js [--n 2000] [--threads <cores>] [--rounds 3] [--batches 1,8,32]`.
 *
 * In one process, one run, interleaved rounds, medians:
 * 1. on this thread: sr25519 verifications/s of the old path (`signatureVerify`, which tries ed25519
 *    first, then the pure-JS sr25519), the new pure-JS path and the WebAssembly path of verify-core.ts;
 *    ed25519 and ecdsa likewise for JS and WASM;
 * 2. on a piscina pool of `threads` workers (the service's pool), sr25519 verifications/s with one check
 *    per task and with `batch` checks per task, WASM and JS, all tasks submitted at once.
 * Prints every figure and the ratios: WASM / JS, and batched / single per pool task.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { Keyring } from '@polkadot/keyring';
import { stringToU8a, u8aToHex } from '@polkadot/util';
import { cryptoWaitReady, mnemonicGenerate, signatureVerify } from '@polkadot/util-crypto';
import { initWasm, verify, type Impl } from '../src/net/verify-core';
import type { SignatureAnswer, SignatureCheck, SignatureTask } from '../src/net/signature-task';
import { parseFlags } from './common';

const flags = parseFlags(process.argv.slice(2));
const N = Number(flags.get('n') ?? 2000);
const THREADS = Number(flags.get('threads') ?? Math.max(1, availableParallelism()));
const ROUNDS = Number(flags.get('rounds') ?? 3);
const BATCHES = (flags.get('batches') ?? '1,8,32').split(',').map(Number);

type KeyType = 'sr25519' | 'ed25519' | 'ecdsa';

function makeChecks(type: KeyType, n: number): SignatureCheck[] {
  const keyring = new Keyring({ type, ss58Format: 42 });
  const pairs = Array.from({ length: Math.min(n, 200) }, () => keyring.addFromUri(mnemonicGenerate(12)));
  return Array.from({ length: n }, (_, i) => {
    const p = pairs[i % pairs.length]!;
    const message = `spam-${i}-${Math.random().toString(36).slice(2)}`;
    return { message, signature: u8aToHex(p.sign(stringToU8a(message))), address: p.address };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function rate(n: number, ms: number): number { return Math.round(n / (ms / 1000)); }

function inThread(checks: SignatureCheck[], how: Impl | 'old'): number {
  const t0 = performance.now();
  for (const c of checks) {
    const ok = how === 'old' ? signatureVerify(c.message, c.signature, c.address).isValid : verify(how, c.message, c.signature, c.address);
    if (!ok) throw new Error(`${how}: a valid signature did not verify`);
  }
  return rate(checks.length, performance.now() - t0);
}

async function inPool(pool: Piscina, checks: SignatureCheck[], impl: Impl, batch: number): Promise<number> {
  const t0 = performance.now();
  const tasks: Array<Promise<SignatureAnswer>> = [];
  for (let i = 0; i < checks.length; i += batch) {
    tasks.push(pool.run({ checks: checks.slice(i, i + batch), impl } satisfies SignatureTask) as Promise<SignatureAnswer>);
  }
  const answers = await Promise.all(tasks);
  const ms = performance.now() - t0;
  for (const a of answers) {
    if (a.impl !== impl) throw new Error(`pool ran ${a.impl}, asked for ${impl}`);
    if (!a.valid.every(Boolean)) throw new Error(`${impl}: a valid signature did not verify in the pool`);
  }
  return rate(checks.length, ms);
}

async function main(): Promise<void> {
  await cryptoWaitReady();
  if (!(await initWasm())) throw new Error('the WebAssembly verifier did not start');
  const sets: Record<KeyType, SignatureCheck[]> = {
    sr25519: makeChecks('sr25519', N),
    ed25519: makeChecks('ed25519', N),
    ecdsa: makeChecks('ecdsa', N),
  };
  const pool = new Piscina({ filename: join(__dirname, '..', 'src', 'net', 'signature-task.js'), minThreads: THREADS, maxThreads: THREADS, idleTimeout: 60_000 });
  // Warm every worker (WebAssembly start, JIT) before measuring.
  await Promise.all(Array.from({ length: THREADS * 4 }, () => pool.run({ checks: sets.sr25519.slice(0, 20), impl: 'wasm' })));
  await Promise.all(Array.from({ length: THREADS * 4 }, () => pool.run({ checks: sets.sr25519.slice(0, 5), impl: 'js' })));
  inThread(sets.sr25519.slice(0, 100), 'js');
  inThread(sets.sr25519.slice(0, 100), 'wasm');

  const series = new Map<string, number[]>();
  const note = (k: string, v: number) => { if (!series.has(k)) series.set(k, []); series.get(k)!.push(v); };
  for (let r = 0; r < ROUNDS; r++) {
    // The pure-JS paths are slow: a fifth of N keeps the run short without changing the rate much.
    const jsN = Math.max(100, Math.floor(N / 5));
    note('thread sr25519 old signatureVerify', inThread(sets.sr25519.slice(0, jsN), 'old'));
    note('thread sr25519 js', inThread(sets.sr25519.slice(0, jsN), 'js'));
    note('thread sr25519 wasm', inThread(sets.sr25519, 'wasm'));
    note('thread ed25519 js', inThread(sets.ed25519.slice(0, jsN), 'js'));
    note('thread ed25519 wasm', inThread(sets.ed25519, 'wasm'));
    note('thread ecdsa js', inThread(sets.ecdsa.slice(0, jsN), 'js'));
    note('thread ecdsa wasm', inThread(sets.ecdsa, 'wasm'));
    for (const b of BATCHES) note(`pool sr25519 wasm batch ${b}`, await inPool(pool, sets.sr25519, 'wasm', b));
    note('pool sr25519 js batch 1', await inPool(pool, sets.sr25519.slice(0, jsN), 'js', 1));
    process.stdout.write(`round ${r + 1}: ${[...series].map(([k, v]) => `${k}=${v[v.length - 1]}`).join(', ')}\n`);
  }
  await pool.destroy();
  const m = (k: string) => median(series.get(k)!);
  const lines: string[] = [`verifications/s, medians of ${ROUNDS} rounds, N=${N}, pool of ${THREADS} threads on ${availableParallelism()} cores:`];
  for (const k of series.keys()) lines.push(`  ${k.padEnd(40)} ${String(m(k)).padStart(8)}`);
  const ratio = (a: string, b: string) => `  ${`${a} / ${b}`.padEnd(72)} ${(m(a) / m(b)).toFixed(2)}x`;
  lines.push('ratios:');
  lines.push(ratio('thread sr25519 wasm', 'thread sr25519 js'));
  lines.push(ratio('thread sr25519 wasm', 'thread sr25519 old signatureVerify'));
  lines.push(ratio('thread ed25519 wasm', 'thread ed25519 js'));
  lines.push(ratio('thread ecdsa wasm', 'thread ecdsa js'));
  lines.push(ratio('pool sr25519 wasm batch 1', 'pool sr25519 js batch 1'));
  lines.push(ratio('pool sr25519 wasm batch 1', 'thread sr25519 wasm'));
  for (const b of BATCHES.filter((x) => x !== 1)) lines.push(ratio(`pool sr25519 wasm batch ${b}`, 'pool sr25519 wasm batch 1'));
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => { process.stderr.write(`${String((err as Error).stack ?? err)}\n`); process.exit(1); });
