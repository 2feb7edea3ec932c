/**
 * What a cluster node pays for a ledger entry it has no part in (not a test):
 * `npm run build && node dist/bench/interest.js [--entries 20000] [--rounds 3]`.
 *
 * Entries as the ledger carries them under load (a turn of 1, 10 or 100 direct messages, or of 10
 * group messages to 20 members each), read the two ways a node can: decoded in full (JSON.parse of
 * the entry, what every node did before entries carried their interest), or judged on the interest
 * first line only (splitEntry + decodeInterest + concerns, src/cluster/interest.ts) by a node holding 1,000 other
 * accounts' sockets; and what stating it costs its publisher. The NATS receive, the same either way, is not in it. Rounds interleave the two
 * (the machine's noise hits both alike); the median µs per entry of each, and their ratio.
 */
import { performance } from 'node:perf_hooks';
import { AccountSet } from '../src/account-hashes';
import type { Post } from '../src/actors/envelopes';
import type { Op } from '../src/carrier/ops';
import { decodeEntry, encodeChunk, splitEntry, takeChunk } from '../src/cluster/entry';
import { concerns, decodeInterest, encodeInterest, interestOf, type Reader } from '../src/cluster/interest';
import { connIdBase } from '../src/cluster/links';
import { directTemplate, groupTemplate } from '../src/protocol/frames';
import { parseFlags } from './common';

const flags = parseFlags(process.argv.slice(2));
const ENTRIES = Number(flags.get('entries') ?? 20_000);
const ROUNDS = Number(flags.get('rounds') ?? 3);
const say = (s: string): void => void process.stdout.write(`${s}\n`);

const account = (i: number): string => `5Acct${String(i).padStart(43, '0')}`;
const msg = JSON.stringify({ text: 'a message of about the size people send, some forty bytes' });

function direct(k: number): Op {
  const from = account(2 * k);
  const to = account(2 * k + 1);
  const post: Post = { t: 'post', conv: `d:${from}|${to}`, tpl: directTemplate(from, msg), from, to: [to], mid: `m${k}`, ackTo: { conn: connIdBase(3) + k, frame: `{"mid":"m${k}"}` } };
  return { t: 'post', post, at: Date.now() };
}

function group(k: number): Op {
  const members = Array.from({ length: 20 }, (_, i) => account(100_000 + k * 20 + i));
  const post: Post = { t: 'post', conv: `g:G${k}`, tpl: groupTemplate(members[0]!, `G${k}`, msg), from: members[0]!, to: members.slice(1), mid: `g${k}`, ackTo: { conn: connIdBase(3) + k, frame: `{"mid":"g${k}"}` } };
  return { t: 'post', post, at: Date.now() };
}

interface Shape { name: string; ops: Op[] }
const shapes: Shape[] = [
  { name: '1 direct message', ops: [direct(0)] },
  { name: '10 direct messages', ops: Array.from({ length: 10 }, (_, k) => direct(k)) },
  { name: '100 direct messages', ops: Array.from({ length: 100 }, (_, k) => direct(k)) },
  { name: '10 group messages (20 members)', ops: Array.from({ length: 10 }, (_, k) => group(k)) },
];

// A node with 1,000 sockets of accounts that are in none of the entries, keeping no partition.
const here = new AccountSet();
for (let i = 0; i < 1000; i++) here.add(account(1_000_000 + i));
const reader: Reader = { self: 'zz', keeps: () => false, mayHold: (accounts) => here.holdsAny(accounts) };

function median(xs: number[]): number { return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!; }

say(`bench:interest: ${ENTRIES} entries per shape and way, ${ROUNDS} rounds; node ${process.version}`);
say('');
say('| entry | bytes | line bytes | stating it (publisher), µs | decoded in full, µs | judged on its line, µs | ratio | concerns this node |');
say('|---|---:|---:|---:|---:|---:|---:|---|');
let sink = 0;
for (const s of shapes) {
  const header = encodeInterest(interestOf('a1', 1, s.ops, { partitions: 64, fresh: () => false }));
  const data = encodeChunk('a1', Date.now(), 1, takeChunk(s.ops), header);
  const full: number[] = [];
  const judged: number[] = [];
  const stated: number[] = [];
  let concerned = false;
  for (let r = 0; r < ROUNDS; r++) {
    let t = performance.now();
    for (let i = 0; i < ENTRIES; i++) sink += decodeEntry(data).ops.length;
    full.push(((performance.now() - t) * 1000) / ENTRIES);
    t = performance.now();
    for (let i = 0; i < ENTRIES; i++) { concerned = concerns(decodeInterest(splitEntry(data).line)!, reader); sink += concerned ? 1 : 0; }
    judged.push(((performance.now() - t) * 1000) / ENTRIES);
    t = performance.now();
    for (let i = 0; i < ENTRIES; i++) sink += encodeInterest(interestOf('a1', i, s.ops, { partitions: 64, fresh: () => false })).length;
    stated.push(((performance.now() - t) * 1000) / ENTRIES);
  }
  const f = median(full);
  const j = median(judged);
  say(`| ${s.name} | ${data.byteLength.toLocaleString('en-US')} | ${header.length} | ${median(stated).toFixed(2)} | ${f.toFixed(2)} | ${j.toFixed(2)} | ${(f / j).toFixed(1)}× | ${concerned ? 'yes (a hash collision)' : 'no'} |`);
}
say('');
say(`(checksum ${sink})`);
