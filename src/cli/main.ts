#!/usr/bin/env node
/**
 * `imgc`: the command-line client, built on the SDK (src/client). See docs/client.md.
 *
 *   imgc key new                      a key file (mnemonic, mode 0600) at --key (default ~/.imgc/key.json)
 *   imgc key show                     its address
 *   imgc keys                         publish this device's end-to-end key packages; print the device
 *   imgc keys remove <DEVICE>         remove a lost device of this account from the key directory
 *   imgc send <to> <msg>              a direct message; prints its mid once the server stored it
 *   imgc listen [--count N]           prints messages and notices as they come (Ctrl-C ends)
 *   imgc history <SS58|GID> [--limit N] [--forward]
 *   imgc group create <SS58…> | detail <GID> | chat <GID> <msg> | notice <GID> <msg> | join <GID> [SS58]
 *              | leave <GID> [SS58] | members <GID> <SS58…> | divert|deport|recover <GID> <SS58>
 *              | update <GID> <key> <value> | destory <GID>
 *
 * Options: --url (default $IMGC_URL or ws://127.0.0.1:7788), --key FILE (default $IMGC_KEY or
 * ~/.imgc/key.json), --json (one JSON value per line, for scripts), --open (sign in unsigned, for
 * servers run with --auth open), --timeout MS (default 10000).
 * Exit codes: 0 done, 1 usage or key error, 2 refused by the server (the code is printed).
 *
 * End-to-end encryption is on (except with --open, or --plain for an account that also uses an
 * unchanged W3OS client): the device's keys, groups and the text of what
 * it read live in `<key>.e2e.json` (mode 0600) beside the key file. Messages print with 🔒 when they
 * came encrypted, `(not encrypted)` when a peer has no device keys (a W3OS client), and
 * `⚠ could not be decrypted` when a record does not decrypt or verify.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { cryptoWaitReady, mnemonicGenerate } from '@polkadot/util-crypto';
import { FileStorage, ImgcClient, ImgcError, polkadotVerify, writePrivate, type E2EInfo, type MessageFrame, type NoticeFrame } from '../client/index.js';

type KeyType = 'sr25519' | 'ed25519';
interface KeyFile { type: KeyType; mnemonic: string; address: string }
/** What `listen` keeps between runs next to the key: the resume token and the highest seq processed. */
interface StateFile { url: string; resume?: string; seq: number }

class UsageError extends Error {}

const USAGE = `usage: imgc [--url URL] [--key FILE] [--json] [--open] [--plain] <command>
  (end to end encrypted unless --plain or --open; the device is kept in <key>.e2e.json)
  key new [--type sr25519|ed25519] [--force]   make a key file (mode 0600)
  key show                                     print its address
  keys                                         publish this device's end-to-end key packages
  keys remove <DEVICE>                         remove a lost device of this account
  send <to> <msg>                              send a direct message
  listen [--count N]                           print what arrives
  history <SS58|GID> [--limit N] [--forward]   newest N (default 20) of a conversation
  group create <SS58...> | detail <GID> | chat <GID> <msg> | notice <GID> <msg>
        join <GID> [SS58] | leave <GID> [SS58] | members <GID> <SS58...>
        divert|deport|recover <GID> <SS58> | update <GID> <key> <value> | destory <GID>
`;

const { values: opt, positionals: args } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    key: { type: 'string' },
    json: { type: 'boolean', default: false },
    open: { type: 'boolean', default: false },
    plain: { type: 'boolean', default: false },
    timeout: { type: 'string' },
    limit: { type: 'string' },
    count: { type: 'string' },
    type: { type: 'string' },
    force: { type: 'boolean', default: false },
    forward: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const url = opt.url ?? process.env.IMGC_URL ?? 'ws://127.0.0.1:7788';
const keyPath = opt.key ?? process.env.IMGC_KEY ?? join(homedir(), '.imgc', 'key.json');
const statePath = `${keyPath.replace(/\.json$/, '')}.state.json`;
const e2ePath = `${keyPath.replace(/\.json$/, '')}.e2e.json`;
const timeoutMs = opt.timeout === undefined ? 10_000 : num(opt.timeout, '--timeout');

function out(human: string, json: unknown): void {
  process.stdout.write(opt.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
}

function num(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a non-negative integer`);
  return n;
}

function text(m: unknown): string {
  return typeof m === 'string' ? m : JSON.stringify(m);
}

async function pairOf(k: KeyFile): Promise<KeyringPair> {
  await cryptoWaitReady();
  return new Keyring({ type: k.type, ss58Format: 42 }).addFromUri(k.mnemonic);
}

function readKey(): KeyFile {
  if (!existsSync(keyPath)) throw new UsageError(`no key at ${keyPath}: run \`imgc key new\` (or give --key)`);
  return JSON.parse(readFileSync(keyPath, 'utf8')) as KeyFile;
}

function readState(): StateFile | undefined {
  try {
    const s = JSON.parse(readFileSync(statePath, 'utf8')) as StateFile;
    return s.url === url ? s : undefined;
  } catch { return undefined; }
}

async function keyCommand(sub: string | undefined): Promise<void> {
  if (sub === 'new') {
    if (existsSync(keyPath) && !opt.force) throw new UsageError(`${keyPath} exists (--force replaces it)`);
    const type = (opt.type ?? 'sr25519') as KeyType;
    if (type !== 'sr25519' && type !== 'ed25519') throw new UsageError('--type is sr25519 or ed25519');
    await cryptoWaitReady();
    const mnemonic = mnemonicGenerate(12);
    const pair = await pairOf({ type, mnemonic, address: '' });
    writePrivate(keyPath, { type, mnemonic, address: pair.address } satisfies KeyFile);
    out(`${pair.address}  (key written to ${keyPath}, mode 0600; keep the mnemonic secret)`, { address: pair.address, type, key: keyPath });
    return;
  }
  if (sub === 'show') {
    const k = readKey();
    const pair = await pairOf(k);
    out(pair.address, { address: pair.address, type: k.type, key: keyPath });
    return;
  }
  throw new UsageError('imgc key new|show');
}

/** Signs in with the key file (or unsigned with --open), resuming where the last `listen` left off. */
async function signedIn(keepState: boolean, setup?: (c: ImgcClient) => void): Promise<ImgcClient> {
  const k = readKey();
  const pair = await pairOf(k);
  const state = keepState ? readState() : undefined;
  const storage = opt.open || opt.plain ? undefined : FileStorage.open(e2ePath);
  const c = new ImgcClient({
    url,
    account: pair.address,
    ...(opt.open ? {} : { signer: pair }),
    requestTimeoutMs: timeoutMs,
    ...(state?.resume ? { resume: state.resume } : {}),
    ...(state ? { lastSeq: state.seq } : {}),
    e2e: storage ? { storage, verify: polkadotVerify } : false,
  });
  if (storage) c.on('state', (s) => { if (s === 'closed') storage.save(); });
  // Listeners go on before the connect: the backlog follows the Welcome at once.
  setup?.(c);
  if (process.env.IMGC_DEBUG) c.on('frame', (f) => process.stderr.write(`< ${JSON.stringify(f)}\n`));
  const t = setTimeout(() => c.close(), timeoutMs);
  try {
    await c.connect();
  } catch (e) {
    if (e instanceof ImgcError && e.code === -1) throw new ImgcError(-3, `could not sign in at ${url} within ${timeoutMs} ms`);
    throw e;
  } finally { clearTimeout(t); }
  // This device's key packages are on the server before anything is sent or read.
  await c.e2e?.topUp();
  return c;
}

function saveState(c: ImgcClient): void {
  writePrivate(statePath, { url, ...(c.resume ? { resume: c.resume } : {}), seq: c.highestSeq } satisfies StateFile);
}

/** The mark of something sent or received encrypted end to end, or not. */
const lock = (encrypted: boolean): string => (encrypted ? '🔒' : '(not encrypted)');

/** How a message was carried, as a mark before its text. */
function e2eMark(e: E2EInfo | undefined): string {
  if (e === undefined) return '';
  return `${e.error ? '⚠' : lock(e.encrypted)} `;
}

/** The frame for --json: an unreadable message's error as its code and text. */
function jsonOf(f: MessageFrame | NoticeFrame): unknown {
  const e = (f as MessageFrame).e2e;
  if (e?.error === undefined) return f;
  return { ...f, e2e: { encrypted: e.encrypted, error: { code: e.error.code, message: e.error.message } } };
}

function showFrame(f: MessageFrame | NoticeFrame): void {
  const from = f.from ?? '';
  const group = (f as { group?: string }).group;
  const where = group ? `[${group}] ` : '';
  const kind = f.type === 'message' ? '' : `(${f.method.cat}/${f.method.act}) `;
  const e = (f as MessageFrame).e2e;
  const body = e?.error ? `could not be decrypted: ${e.error.message}` : text(f.msg);
  out(`${where}${kind}${e2eMark(e)}${from ? `${from}: ` : ''}${body}`, jsonOf(f));
}

async function listen(): Promise<void> {
  const max = opt.count === undefined ? Infinity : num(opt.count, '--count');
  let seen = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => { finish = resolve; });
  const c = await signedIn(true, (c) => {
    const take = (f: MessageFrame | NoticeFrame) => {
      showFrame(f);
      // Closing here handles no later frame; this one counts as processed (acknowledged).
      if (++seen >= max) { c.close(); finish(); }
    };
    c.on('message', take);
    c.on('notice', take);
    c.on('resume', () => saveState(c));
    c.on('state', (s) => { if (!opt.json) process.stderr.write(`[${s}]\n`); });
  });
  process.once('SIGINT', finish);
  process.once('SIGTERM', finish);
  if (max === 0) finish();
  await finished;
  c.close();
  saveState(c);
}

async function history(target: string | undefined): Promise<void> {
  if (!target) throw new UsageError('imgc history <SS58|GID> [--limit N] [--forward]');
  const limit = opt.limit === undefined ? 20 : num(opt.limit, '--limit');
  const c = await signedIn(false);
  const which = /^GD[A-Za-z]{10}$/.test(target) ? { group: target } : { with: target };
  const got: Array<MessageFrame | NoticeFrame> = [];
  for await (const m of c.history({ ...which, limit: Math.min(100, Math.max(1, limit)), direction: opt.forward ? 'forward' : 'backward' })) {
    if (got.length >= limit) break;
    got.push(m);
  }
  c.close();
  if (!opt.forward) got.reverse(); // oldest first on screen
  for (const m of got) showFrame(m);
}

async function group(sub: string | undefined, rest: string[]): Promise<void> {
  const need = (n: number, what: string) => { if (rest.length < n) throw new UsageError(`imgc group ${sub} ${what}`); };
  const c = await signedIn(false);
  try {
    const g = c.group;
    const [id, a1] = rest;
    switch (sub) {
      case 'create': {
        need(1, '<SS58...>');
        const gid = await g.create(rest);
        return out(gid, { id: gid });
      }
      case 'detail': { need(1, '<GID>'); const d = await g.detail(id!); return out(JSON.stringify(d, null, 2), d); }
      case 'chat': { need(2, '<GID> <msg>'); const r = await g.chat(id!, rest.slice(1).join(' ')); return out(`sent ${r.mid} ${lock(r.encrypted)}`, r); }
      case 'notice': { need(2, '<GID> <msg>'); const r = await g.notice(id!, rest.slice(1).join(' ')); return out(`sent ${r.mid}`, r); }
      case 'join': { need(1, '<GID> [SS58]'); return out('joined', await g.join(id!, a1 ?? c.account)); }
      case 'leave': { need(1, '<GID> [SS58]'); return out('left', await g.leave(id!, a1 ?? c.account)); }
      case 'members': { need(2, '<GID> <SS58...>'); return out('members set', await g.members(id!, rest.slice(1))); }
      case 'divert': { need(2, '<GID> <SS58>'); return out('manager changed', await g.divert(id!, a1!)); }
      case 'deport': { need(2, '<GID> <SS58>'); return out('deported', await g.deport(id!, a1!)); }
      case 'recover': { need(2, '<GID> <SS58>'); return out('recovered', await g.recover(id!, a1!)); }
      case 'update': { need(3, '<GID> <key> <value>'); return out('updated', await g.update(id!, a1 as 'nick', rest[2])); }
      case 'destory': { need(1, '<GID>'); return out('destroyed', await g.destory(id!)); }
      default: throw new UsageError('imgc group create|detail|chat|notice|join|leave|members|divert|deport|recover|update|destory');
    }
  } finally { c.close(); }
}

async function main(): Promise<void> {
  const [cmd, sub, ...rest] = args;
  if (opt.help || cmd === undefined || cmd === 'help') { process.stdout.write(USAGE); return; }
  switch (cmd) {
    case 'key': return keyCommand(sub);
    case 'send': {
      if (sub === undefined || rest.length === 0) throw new UsageError('imgc send <to> <msg>');
      const c = await signedIn(false);
      try {
        const r = await c.send(sub, rest.join(' '));
        return out(`sent ${r.mid} to ${r.to} ${lock(r.encrypted)}`, r);
      } finally { c.close(); }
    }
    case 'listen': return listen();
    case 'keys': {
      if (opt.open || opt.plain) throw new UsageError('imgc keys: end-to-end encryption needs a signed sign-in (no --open, no --plain)');
      if (sub === 'remove' && rest[0] === undefined) throw new UsageError('imgc keys remove <DEVICE>');
      const c = await signedIn(false);
      if (sub === 'remove') {
        try {
          const removed = await c.e2e!.removeDevice(rest[0]);
          return out(removed ? `device ${rest[0]} removed` : `no device ${rest[0]}`, { device: rest[0], removed });
        } finally { c.close(); }
      }
      c.close();
      const device = c.e2e?.device;
      return out(`device ${device} (key packages on ${url}; state in ${e2ePath})`, { device, state: e2ePath });
    }
    case 'history': return history(sub);
    case 'group': return group(sub, rest);
    default: throw new UsageError(`unknown command ${cmd}\n${USAGE}`);
  }
}

main().then(() => { process.exitCode = 0; }, (e: unknown) => {
  if (e instanceof ImgcError) {
    process.stderr.write(opt.json ? `${JSON.stringify({ error: e.message, code: e.code })}\n` : `imgc: ${e.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`imgc: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
});
