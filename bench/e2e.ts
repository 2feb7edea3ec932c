/**
 * `node dist/bench/e2e.js`: what end-to-end encryption costs (issue 23).
 *
 * 1. The SDK: encrypting and decrypting a direct message (µs each, through the engine a client
 *    uses: `E2E.seal` and `E2E.open`), and the sizes on the wire against the plaintext.
 * 2. Group changes: a sender's commit adding every device of a group of 100 and of 1,000 (its first
 *    message there), a commit removing one member, a member applying that commit, and a Welcome
 *    joined (ms, and the bytes each carries).
 * 3. The server: pairs deliveries/s and server CPU µs per delivery with payloads the size of an
 *    encrypted message against plaintext ones, alternating in one run, a fresh server each.
 *
 *   node dist/bench/e2e.js [--messages 2000] [--groups 100,1000] [--rounds 2] [--pairs 500]
 *       [--duration 6] [--warmup 2] [--skip-server] [--out FILE]
 */
import * as fs from 'node:fs';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { signFn } from '../src/client/signer';
import { E2E, type E2EHost } from '../src/client/e2e/engine';
import { credentialOf, newDevice, authService } from '../src/client/e2e/device';
import { polkadotVerify } from '../src/client/e2e/polkadot-verify';
import {
  capabilities, clientConfig, createApplicationMessage, createCommit, createGroup, emptyPskIndex, encodeAny, encodeWelcome,
  generateKeyPackageWithKey, joinGroup, lifetime, processPrivateMessage, suite, utf8, type ClientState, type KeyPackage, type PrivateKeyPackage,
} from '../src/client/e2e/mls';
import type { MessageFrame, NoticeFrame, Request } from '../src/client/types';
import { flagNum, now, parseFlags } from './common';
import * as driver from './driver';
import { startServer, stopServer } from './server';
import { fmt } from './stats';

const flags = parseFlags(process.argv.slice(2));
const lines: string[] = [];
function say(s: string): void { lines.push(s); process.stdout.write(`${s}\n`); }

/** The server's key directory and group records, in memory, for engines without a server. */
class Directory {
  private readonly packages = new Map<string, Map<string, string[]>>();
  readonly groups = new Map<string, string[]>();

  host(account: string, sign: (t: string) => Promise<string>): E2EHost {
    return {
      account,
      sign,
      groupMembers: async (id) => this.groups.get(id) ?? [],
      request: async (f: Request) => ({ type: 'notice', method: { cat: 'keys', act: f.act }, msg: this.answer(account, f) } as unknown as NoticeFrame),
    };
  }

  private answer(account: string, f: Request): unknown {
    const mine = this.packages.get(account) ?? new Map<string, string[]>();
    this.packages.set(account, mine);
    if (f.act === 'count') return { devices: [...mine].map(([device, p]) => ({ device, count: p.length, lastResort: true })) };
    if (f.act === 'publish') {
      const list = mine.get(f.device as string) ?? [];
      list.push(...(f.packages as string[]));
      mine.set(f.device as string, list);
      return { device: f.device, count: list.length, lastResort: true };
    }
    const except = new Set((f.except as string[] | undefined) ?? []);
    const out: Array<{ account: string; device: string; kp: string }> = [];
    for (const a of f.accounts as string[]) {
      for (const [device, list] of this.packages.get(a) ?? []) if (!except.has(device) && list.length > 0) out.push({ account: a, device, kp: list.shift()! });
    }
    return { packages: out };
  }
}

async function sdkCosts(): Promise<void> {
  await cryptoWaitReady();
  const n = flagNum(flags, 'messages', 2000);
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  const [alice, bob] = [keyring.addFromUri('//BenchAlice'), keyring.addFromUri('//BenchBob')];
  const dir = new Directory();
  const a = new E2E(dir.host(alice.address, signFn(alice)), { verify: polkadotVerify });
  const b = new E2E(dir.host(bob.address, signFn(bob)), { verify: polkadotVerify });
  await a.topUp();
  await b.topUp();
  const text = 'x'.repeat(100);
  const frame = (msg: unknown): MessageFrame => ({ type: 'message', msg, from: alice.address, to: bob.address, method: { cat: 'chat', act: 'chat' } });
  // The first message creates the group (a commit and a Welcome); measured apart.
  let t = now();
  const first = (await a.seal({ with: bob.address }, text))!;
  const firstMs = now() - t;
  await b.open(frame(first[0]));
  const sealed: unknown[] = [];
  t = now();
  for (let i = 0; i < n; i++) sealed.push((await a.seal({ with: bob.address }, `${text}${i}`))![0]);
  const encUs = ((now() - t) * 1000) / n;
  t = now();
  let read = 0;
  for (const s of sealed) if ((await b.open(frame(s))).kind === 'message') read++;
  const decUs = ((now() - t) * 1000) / n;
  const plainFrame = JSON.stringify({ cat: 'chat', act: 'chat', to: bob.address, msg: text, mid: 'm'.repeat(22) }).length;
  const encFrame = JSON.stringify({ cat: 'chat', act: 'chat', to: bob.address, msg: sealed[0], mid: 'm'.repeat(22) }).length;
  say(`## SDK, direct messages of 100 characters (${fmt(n)} each way, one process)`);
  say('');
  say('| | figure |');
  say('|---|---|');
  say(`| encrypt (seal), µs per message | ${encUs.toFixed(0)} |`);
  say(`| decrypt and verify (open), µs per message | ${decUs.toFixed(0)} |`);
  say(`| the first message of a conversation (group made, peer added), ms | ${firstMs.toFixed(1)} |`);
  say(`| messages read | ${fmt(read)} of ${fmt(n)} |`);
  say(`| request frame, characters: plaintext / encrypted | ${plainFrame} / ${encFrame} (${(encFrame / plainFrame).toFixed(2)}×) |`);
  say('');
  envelopePad = JSON.stringify(sealed[0]).slice(1, -1);
}

/** Fields of a real envelope, for the server's frames (`,"e2e":…,"g":…,"m":…`). */
let envelopePad = '';

interface Member { kp: KeyPackage; priv: PrivateKeyPackage }

/** A device of a made-up account (its vouch is not a signature: the groups here take every credential). */
async function member(i: number): Promise<Member> {
  const cs = await suite();
  const account = `5Bench${String(i).padStart(42, '0')}`;
  const d = await newDevice(account, async () => '0x00', cs);
  const r = await generateKeyPackageWithKey(credentialOf(d), capabilities(), lifetime, [], { signKey: d.signKey, publicKey: d.publicKey }, cs);
  return { kp: r.publicPackage, priv: r.privatePackage };
}

async function groupCosts(size: number): Promise<string> {
  const cs = await suite();
  // Vouches are checked by ts-mls through the auth service; here every one is taken as valid, so
  // the figures are MLS's own (a real check adds one signature verification per new device).
  const config = clientConfig(authService(() => true));
  const members: Member[] = [];
  for (let i = 0; i < size; i++) members.push(await member(i));
  const [creator, ...rest] = members;
  let state: ClientState = await createGroup(utf8(`bench-${size}`), creator!.kp, creator!.priv, [], cs, config);
  let t = now();
  const add = await createCommit({ state, cipherSuite: cs }, { extraProposals: rest.map((m) => ({ proposalType: 'add' as const, add: { keyPackage: m.kp } })), ratchetTreeExtension: true });
  const addMs = now() - t;
  const addBytes = encodeAny(add.commit).length + encodeWelcome(add.welcome!).length;
  state = add.newState;
  t = now();
  let reader = await joinGroup(add.welcome!, rest[0]!.kp, rest[0]!.priv, emptyPskIndex, cs, undefined, undefined, config);
  const joinMs = now() - t;
  t = now();
  const rm = await createCommit({ state, cipherSuite: cs }, { extraProposals: [{ proposalType: 'remove', remove: { removed: size - 1 } }] });
  const rmMs = now() - t;
  const rmBytes = encodeAny(rm.commit).length;
  t = now();
  const applied = await processPrivateMessage(reader, (rm.commit as { privateMessage: Parameters<typeof processPrivateMessage>[1] }).privateMessage, emptyPskIndex, cs);
  const applyMs = now() - t;
  reader = applied.newState;
  const app = await createApplicationMessage(rm.newState, utf8('x'.repeat(100)), cs);
  return `| ${fmt(size)} | ${addMs.toFixed(0)} ms, ${fmt(addBytes)} B | ${joinMs.toFixed(0)} ms | ${rmMs.toFixed(1)} ms, ${fmt(rmBytes)} B | ${applyMs.toFixed(1)} ms | ${encodeAny({ privateMessage: app.privateMessage, wireformat: 'mls_private_message', version: 'mls10' }).length} B |`;
}

async function serverCosts(): Promise<void> {
  const rounds = flagNum(flags, 'rounds', 2);
  const pairs = flagNum(flags, 'pairs', 500);
  const duration = flagNum(flags, 'duration', 6);
  const warmup = flagNum(flags, 'warmup', 2);
  const rows: Array<{ name: string; rate: number; cpu: number }> = [];
  let label = 0;
  for (let r = 0; r < rounds; r++) {
    // The control: a plaintext message of the same size (a text field as long as the envelope's).
    const sameSize = `,"t":"${'a'.repeat(envelopePad.length - 6)}"`;
    for (const [name, pad] of [['plaintext', ''], ['encrypted-size', `,${envelopePad}`], ['plaintext of that size', sameSize]] as const) {
      const srv = await startServer({ kind: 'service', workers: 2, auth: 'open' });
      try {
        const res = await driver.flow({ url: srv.url, pid: srv.pid, label: `e2e${++label}` }, { mode: 'pairs', pairs, duration, warmup, window: 4, rate: 0, ...(pad ? { pad } : {}) });
        rows.push({ name, rate: res.figures['deliveries/s'] ?? NaN, cpu: res.figures['server CPU µs per delivery'] ?? NaN });
        process.stdout.write(`· ${name}: ${fmt(rows.at(-1)!.rate)} deliveries/s, ${rows.at(-1)!.cpu.toFixed(1)} µs server CPU per delivery\n`);
      } finally { await stopServer(srv); }
    }
  }
  say(`## The server: pairs (${pairs} pairs, window 4) with encrypted-size payloads against plaintext, alternating, ${rounds} rounds`);
  say('');
  say(`Encrypted-size: every message carries the fields of a real envelope (${envelopePad.length + 1} more characters);`);
  say('plaintext of that size: a text field as long instead (the control: the server does not read either).');
  say('');
  say('| round | plaintext deliveries/s | encrypted-size | plaintext of that size | encrypted-size / same-size plaintext | server CPU µs/delivery: plaintext / encrypted-size / same-size plaintext |');
  say('|---|---|---|---|---|---|');
  for (let r = 0; r < rounds; r++) {
    const [p, e, z] = [rows[3 * r]!, rows[3 * r + 1]!, rows[3 * r + 2]!];
    say(`| ${r + 1} | ${fmt(p.rate)} | ${fmt(e.rate)} (${(e.rate / p.rate).toFixed(2)}×) | ${fmt(z.rate)} (${(z.rate / p.rate).toFixed(2)}×) | ${(e.rate / z.rate).toFixed(2)}× | ${p.cpu.toFixed(1)} / ${e.cpu.toFixed(1)} / ${z.cpu.toFixed(1)} |`);
  }
  say('');
}

async function main(): Promise<void> {
  say(`# End-to-end encryption costs (${new Date().toISOString()}, load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
  say('');
  await sdkCosts();
  say('## Group changes (MLS, ciphersuite 1; one device per member)');
  say('');
  say('| devices | first commit: adds every other device (+ Welcome) | a Welcome joined | commit removing one | a member applies it | an application message |');
  say('|---|---|---|---|---|---|');
  for (const size of (flags.get('groups') ?? '100,1000').split(',').map(Number)) say(await groupCosts(size));
  say('');
  if (!flags.has('skip-server')) await serverCosts();
  const out = flags.get('out');
  if (out) fs.writeFileSync(out, `${lines.join('\n')}\n`);
}

main().then(() => process.exit(0), (e: unknown) => { process.stderr.write(`bench e2e failed: ${(e as Error).stack ?? String(e)}\n`); process.exit(1); });
