/**
 * The load generator's agent: signs in clients and drives one scenario, inside one process.
 * It runs forked by the driver (`--agent`, requests over the IPC channel) so that its own
 * sockets stay under the per-process open-file limit and its CPU is measured apart.
 *
 * Standalone against a server that is already running:
 *   node dist/bench/loadgen.js --url ws://127.0.0.1:P [--pid <server pid>] --scenario pairs|fanout|capacity|signin|offline
 *       [--pairs 500] [--group 200] [--clients 2000] [--target 19000] [--count 2000] [--recipients 1000]
 *       [--duration 8] [--warmup 2] [--window 4] [--rate 0]
 */
import { Keyring } from '@polkadot/keyring';
import { stringToU8a, u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import { closeAll, counters, readMark, resetCounters, signIn, signInMany, type BenchClient, type Signer } from './clients';
import { dirBytes, now, openAccount, ProcWatch, SelfCpu, sleep, writeBytes } from './common';
import { Latency, type RunResult } from './stats';
import { stormArm, stormSetup, stormWait, type StormSetupArgs } from './storm';
import type { CapConnectArgs, FlowArgs, OfflineArgs, SigninArgs } from './agent-args';

/**
 * The node of account `i` among `nodes`: in pairs the two accounts of pair p (2p, 2p+1) on nodes p
 * and p+1 (mod nodes), so with two nodes or more every message crosses nodes and every node holds as
 * many senders as receivers; in fan-out member j of group g on node j+g, so every group spans the
 * nodes and the creators (who send) rotate over them.
 */
export function nodeOf(mode: 'pairs' | 'fanout', i: number, group: number, nodes: number): number {
  if (nodes <= 1) return 0;
  return mode === 'pairs' ? ((i >> 1) + (i & 1)) % nodes : ((i % group) + Math.floor(i / group)) % nodes;
}

interface StreamCounts {
  ledgerSeq: number; ledgerBytes: number; otherSeq: number; allBytes: number; inMsgs: number; outMsgs: number; inBytes: number; outBytes: number;
  /** When the counts were read (ms, midpoint of the request): rates are over the time between two reads. */
  at: number;
}

/**
 * Whether a stream is part of the ledger `ledger` names: that stream, or one whose name continues it
 * after `_` (a build may keep the ledger in several streams, one per partition).
 */
function isLedger(name: string, ledger: string): boolean {
  return ledger !== '' && (name === ledger || name.startsWith(`${ledger}_`));
}

/**
 * Last sequences and bytes of the JetStream streams, and nats-server's message counters, from its
 * monitoring port; three tries (a saturated machine can be slow to answer), undefined after them.
 */
async function streamCounts(monitor: string, ledger: string): Promise<StreamCounts | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const out = await streamCountsOnce(monitor, ledger);
    if (out) return out;
  }
  return undefined;
}

async function streamCountsOnce(monitor: string, ledger: string): Promise<StreamCounts | undefined> {
  const t = now();
  try {
    const [r, v] = await Promise.all([fetch(`${monitor}/jsz?streams=true`, { signal: AbortSignal.timeout(5000) }), fetch(`${monitor}/varz`, { signal: AbortSignal.timeout(5000) })]);
    const j = await r.json() as { account_details?: Array<{ stream_detail?: Array<{ name: string; state: { last_seq: number; bytes: number } }> }> };
    const vz = await v.json() as { in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number };
    const out: StreamCounts = { ledgerSeq: 0, ledgerBytes: 0, otherSeq: 0, allBytes: 0, inMsgs: vz.in_msgs, outMsgs: vz.out_msgs, inBytes: vz.in_bytes, outBytes: vz.out_bytes, at: (t + now()) / 2 };
    for (const acc of j.account_details ?? []) {
      for (const st of acc.stream_detail ?? []) {
        out.allBytes += st.state.bytes;
        if (isLedger(st.name, ledger)) { out.ledgerSeq += st.state.last_seq; out.ledgerBytes += st.state.bytes; } else out.otherSeq += st.state.last_seq;
      }
    }
    return out;
  } catch {
    return undefined;
  }
}

const SIGNIN_CONCURRENCY = 100;

function errorFigures(): { errors: number; notes: string[] } {
  const notes = counters.errorSamples.length > 0 ? [`error frames e.g. ${counters.errorSamples[0]}`] : [];
  return { errors: counters.errorFrames + counters.closedUnexpected + counters.connectFailed, notes };
}

interface Stream {
  sender: BenchClient;
  /** Frame text up to the message's `[`: `{"cat":…,"act":"chat","to":…,"msg":{"b":[` */
  prefix: string;
  fan: number;
  inflight: number;
  nextN: number;
  pending: Map<number, number>;
  lastProgress: number;
  id: number;
}

/** Creates a group from `creator` and waits for the notice that carries its id. */
function createGroup(creator: BenchClient, members: string[], key: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const prev = creator.handler;
    const timer = setTimeout(() => {
      creator.handler = prev;
      reject(new Error('group create: no answer'));
    }, timeoutMs);
    creator.handler = (c, data) => {
      if (data.indexOf('"type":"error"') >= 0 && data.indexOf(key) >= 0) {
        clearTimeout(timer);
        creator.handler = prev;
        reject(new Error(`group create refused: ${data.toString().slice(0, 300)}`));
        return;
      }
      if (data.indexOf('"act":"create"') >= 0 && data.indexOf(`"callback":"${key}"`) >= 0) {
        clearTimeout(timer);
        creator.handler = prev;
        try {
          const f = JSON.parse(data.toString()) as { msg?: { id?: unknown } };
          if (typeof f.msg?.id === 'string') {
            resolve(f.msg.id);
            return;
          }
        } catch {
          // fall through
        }
        reject(new Error(`group create: no id in ${data.toString().slice(0, 200)}`));
        return;
      }
      prev?.(c, data);
    };
    creator.send({ cat: 'group', act: 'create', list: members, callback: key });
  });
}

/** `pairs` and `fanout`, closed or open loop. */
export async function flow(a: FlowArgs): Promise<RunResult> {
  resetCounters();
  const notes: string[] = [];
  const pad = a.pad ?? '';
  const open = a.rate > 0;
  const n = a.mode === 'pairs' ? a.pairs * 2 : a.group * a.groups;
  const accs = Array.from({ length: n }, (_, i) => openAccount(`${a.label}/${a.mode}`, i));
  // Away members (odd positions within their group) are listed in the group but never sign in.
  const isAway = (i: number): boolean => a.mode === 'fanout' && a.away === true && (i % a.group) % 2 === 1;
  const lat = new Latency();
  const streams: Stream[] = [];
  let sending = false;
  let measuring = false;
  let tStart = Infinity;
  let tEnd = Infinity;
  let sent = 0;
  let sentWin = 0;
  let expected = 0;
  let expectedWin = 0;
  let delivered = 0;
  let deliveredWin = 0;
  let dup = 0;
  let stalls = 0;
  const eph = a.mode === 'fanout' ? a.ephemeral : undefined;
  const ephGroups: { gid: string; members: BenchClient[]; accs: string[]; churner: string }[] = [];
  let typingSent = 0;
  let typingRecv = 0;
  let presenceRecv = 0;
  let churns = 0;

  function pump(st: Stream): void {
    while (sending && st.inflight < a.window && st.sender.open) {
      const k = st.nextN++;
      st.inflight++;
      st.pending.set(k, st.fan);
      const t = now();
      st.sender.sendRaw(`${st.prefix}${t},${st.id},${k}]${pad}}`);
      sent++;
      expected += st.fan;
      if (measuring) {
        sentWin++;
        expectedWin += st.fan;
      }
    }
  }

  const handler = (c: BenchClient, data: Buffer): void => {
    const m = readMark(data);
    if (!m) {
      if (eph !== undefined) {
        if (data.indexOf('"act":"typing"') >= 0) typingRecv++;
        else if (data.indexOf('"act":"presence"') >= 0) presenceRecv++;
      }
      return;
    }
    const t = now();
    delivered++;
    c.got++;
    const [at, si, k] = m;
    if (open) {
      if (at >= tStart && at < tEnd) {
        deliveredWin++;
        lat.add(t - at);
      }
      return;
    }
    if (measuring) {
      deliveredWin++;
      lat.add(t - at);
    }
    const st = streams[si];
    if (!st) return;
    const left = st.pending.get(k);
    if (left === undefined) {
      dup++;
      return;
    }
    st.lastProgress = t;
    if (left <= 1) {
      st.pending.delete(k);
      st.inflight--;
      pump(st);
    } else {
      st.pending.set(k, left - 1);
    }
  };

  const onlineIdx = accs.map((_, i) => i).filter((i) => !isAway(i));
  const cl = a.cluster;
  const urlOf = cl ? (k: number): string => cl.urls[nodeOf(a.mode, onlineIdx[k]!, a.group, cl.urls.length)]! : undefined;
  const signed = await signInMany(a.url, onlineIdx.map((i) => accs[i]), handler, { concurrency: SIGNIN_CONCURRENCY, deadlineMs: 120_000, ...(urlOf ? { urlOf } : {}) });
  const byIdx = new Map<number, BenchClient>();
  for (const c of signed.clients) {
    c.idx = onlineIdx[c.idx];
    byIdx.set(c.idx, c);
  }
  if (signed.failed > 0) notes.push(`${signed.failed} sign-ins failed (${signed.firstError})`);

  if (a.mode === 'pairs') {
    for (let i = 0; i < n; i++) {
      const c = byIdx.get(i);
      if (!c || !byIdx.has(i ^ 1)) continue;
      const st: Stream = { sender: c, prefix: `{"cat":"chat","act":"chat","to":${JSON.stringify(accs[i ^ 1])},"msg":{"b":[`,
        fan: 1, inflight: 0, nextN: 0, pending: new Map<number, number>(), lastProgress: now(), id: streams.length };
      streams.push(st);
    }
  } else {
    const creations: Promise<void>[] = [];
    for (let g = 0; g < a.groups; g++) {
      const members = accs.slice(g * a.group, (g + 1) * a.group);
      const creator = byIdx.get(g * a.group);
      if (!creator) continue;
      const present = members.filter((_, j) => byIdx.has(g * a.group + j)).length;
      const churner = openAccount(`${a.label}/churn`, g);
      creations.push(createGroup(creator, eph ? [...members, churner] : members, `k${g}`, 30_000).then((gid) => {
        if (eph) {
          const online = members.map((_, j) => byIdx.get(g * a.group + j)).filter((c): c is BenchClient => c !== undefined);
          ephGroups.push({ gid, members: online, accs: [...members, churner], churner });
        }
        const st: Stream = { sender: creator, prefix: `{"cat":"group","act":"chat","to":${JSON.stringify(gid)},"msg":{"b":[`,
          fan: present - 1, inflight: 0, nextN: 0, pending: new Map<number, number>(), lastProgress: now(), id: streams.length };
        streams.push(st);
      }, (e: Error) => {
        if (notes.length < 5) notes.push(e.message);
      }));
    }
    await Promise.all(creations);
    await sleep(300); // let the create notices land
    if (eph?.presence) {
      // Every member watches the rest of its group (the churner included).
      for (const eg of ephGroups) {
        for (const c of eg.members) c.send({ cat: 'chat', act: 'presence', subscribe: eg.accs.filter((x) => x !== c.acc) });
      }
      await sleep(500);
    }
  }
  if (streams.length === 0) {
    await closeAll(signed.clients);
    const ef = errorFigures();
    return { figures: { 'deliveries/s': 0, errors: ef.errors + 1 }, notes: [...notes, ...ef.notes, 'no stream could start'] };
  }

  /** Typing and presence churn while sending; returns the stop function. */
  function startEphemeral(e: { typingPerS: number; churnEveryMs: number }): () => void {
    const all = ephGroups.flatMap((eg) => eg.members.map((c) => ({ c, frame: { cat: 'chat', act: 'typing', group: eg.gid } })));
    let rr = 0;
    let due = 0;
    let last = now();
    const typing = setInterval(() => {
      const t = now();
      due += ((t - last) / 1000) * e.typingPerS * all.length;
      last = t;
      while (due >= 1 && all.length > 0) {
        const x = all[rr++ % all.length]!;
        if (x.c.open) { x.c.send(x.frame); typingSent++; }
        due -= 1;
      }
    }, 20);
    let stopped = false;
    const held = new Set<BenchClient>();
    for (const eg of ephGroups) {
      void (async () => {
        await sleep(Math.random() * e.churnEveryMs);
        while (!stopped) {
          try {
            const c = await signIn(a.url, eg.churner, undefined);
            churns++;
            held.add(c);
            await sleep(e.churnEveryMs / 2);
            c.close();
            held.delete(c);
          } catch {
            // counted by the clients' counters
          }
          await sleep(e.churnEveryMs / 2);
        }
      })();
    }
    return () => {
      stopped = true;
      clearInterval(typing);
      for (const c of held) c.close();
    };
  }

  const watch = new ProcWatch(cl ? cl.pids : a.serverPid);
  const natsWatch = cl?.natsPid !== undefined ? new ProcWatch(cl.natsPid) : undefined;
  // The first node apart: with all the load on it, the rest of the nodes' CPU is what they pay for conversations they take no part in.
  const firstWatch = cl && cl.pids.length > 1 ? new ProcWatch(cl.pids[0]!) : undefined;
  let js0: Promise<StreamCounts | undefined> = Promise.resolve(undefined);
  const self = new SelfCpu();
  /** The measured window starts: CPU of the server(s), of nats-server and of this process; the streams' counts. */
  const startWindow = (): void => {
    watch.start();
    natsWatch?.start();
    firstWatch?.start();
    if (cl?.natsMonitor !== undefined) js0 = streamCounts(cl.natsMonitor, cl.stream ?? '');
    self.reset();
  };
  // Disk: bytes the server process caused to be written, and the data directory's growth, over
  // the whole sending (warm-up included), per message sent.
  const io0 = writeBytes(a.serverPid);
  const du0 = a.dataDir ? dirBytes(a.dataDir) : NaN;
  sending = true;
  const t0 = now() + 5;
  const ephStop = eph ? startEphemeral(eph) : undefined;
  if (open) {
    // Open loop: message k is due at t0 + k/rate, from stream k mod S; its stamp is the due time.
    const period = 1000 / a.rate;
    tStart = t0 + a.warmup * 1000;
    tEnd = tStart + a.duration * 1000;
    const total = Math.ceil(((tEnd - t0) / 1000) * a.rate);
    let k = 0;
    let started = false;
    while (k < total && now() < tEnd + 1000) {
      const t = now();
      if (!started && t >= tStart) {
        started = true;
        measuring = true;
        startWindow();
      }
      while (k < total && t0 + k * period <= t) {
        const due = t0 + k * period;
        const st = streams[k % streams.length];
        if (st.sender.open) {
          st.sender.sendRaw(`${st.prefix}${due},${k % streams.length},${k}]${pad}}`);
          sent++;
          expected += st.fan;
          if (due >= tStart && due < tEnd) {
            sentWin++;
            expectedWin += st.fan;
          }
        }
        k++;
      }
      await sleep(1);
    }
    if (!started) startWindow();
  } else {
    for (const st of streams) pump(st);
    const stallTimer = setInterval(() => {
      const t = now();
      for (const st of streams) {
        if (st.inflight > 0 && t - st.lastProgress > 10_000) {
          stalls++;
          st.pending.clear();
          st.inflight = 0;
          st.lastProgress = t;
          pump(st);
        }
      }
    }, 500);
    await sleep(a.warmup * 1000);
    tStart = now();
    measuring = true;
    startWindow();
    await sleep(a.duration * 1000);
    tEnd = now();
    clearInterval(stallTimer);
  }
  measuring = false;
  sending = false;
  ephStop?.();
  const res = watch.stop();
  const natsRes = natsWatch?.stop();
  const firstRes = firstWatch?.stop();
  const js1 = cl?.natsMonitor !== undefined ? streamCounts(cl.natsMonitor, cl.stream ?? '') : Promise.resolve(undefined);
  const selfPct = self.pct();
  const win = (Math.min(now(), tEnd) - tStart) / 1000;
  let clusterFigures: Record<string, number> = {};
  if (cl) {
    const [c0, c1] = await Promise.all([js0, js1]);
    if (cl.natsMonitor !== undefined && !(c0 && c1)) notes.push('nats-server\'s monitoring port did not answer: no ledger or NATS traffic figures');
    // Over the time between the two reads, which may lag the window's edges by a request's time.
    const span = c0 && c1 ? (c1.at - c0.at) / 1000 : NaN;
    const entries = c0 && c1 ? c1.ledgerSeq - c0.ledgerSeq : NaN;
    clusterFigures = {
      ...(natsRes === undefined ? {} : { 'nats CPU %': natsRes.cpuPct, 'nats RSS MB': natsRes.peakRss / 1048576 }),
      'node 1 CPU %': firstRes === undefined ? res.cpuPct : firstRes.cpuPct,
    };
    if (cl.natsMonitor !== undefined) clusterFigures = {
      ...clusterFigures,
      'ledger entries/s': entries / span,
      'ledger B/entry': c0 && c1 && entries > 0 ? (c1.ledgerBytes - c0.ledgerBytes) / entries : NaN,
      'KV writes/s': c0 && c1 ? (c1.otherSeq - c0.otherSeq) / span : NaN,
      // What JetStream holds, every stream together (ledger, buckets, whatever else a build keeps there).
      'JetStream stored MB/s': c0 && c1 ? (c1.allBytes - c0.allBytes) / span / 1e6 : NaN,
      // Everything through nats-server: publishes, requests and replies in; deliveries to subscribers and consumers out.
      'nats msgs in/s': c0 && c1 ? (c1.inMsgs - c0.inMsgs) / span : NaN,
      'nats msgs out/s': c0 && c1 ? (c1.outMsgs - c0.outMsgs) / span : NaN,
      'nats MB in/s': c0 && c1 ? (c1.inBytes - c0.inBytes) / span / 1e6 : NaN,
      'nats MB out/s': c0 && c1 ? (c1.outBytes - c0.outBytes) / span / 1e6 : NaN,
    };
  }
  // Drain: wait for what is in flight, bounded.
  const drainEnd = now() + 5000;
  while (delivered < expected && now() < drainEnd) await sleep(50);
  let disk: Record<string, number> = {};
  const tSent = now();
  if (a.dataDir !== undefined) {
    // Let the server finish its writes (background sync, batched positions, journal timers).
    await sleep(1500);
    const io1 = writeBytes(a.serverPid);
    const du1 = dirBytes(a.dataDir);
    disk = {
      'disk write B/msg': sent > 0 ? (io1 - io0) / sent : NaN,
      'data dir growth B/msg': sent > 0 ? (du1 - du0) / sent : NaN,
      // Per second of sending (warm-up, window and drain; not the settling pause).
      'disk write KB/s': (io1 - io0) / 1024 / Math.max(0.001, (tSent - t0) / 1000),
      'msgs sent (all)': sent,
    };
  }
  const s = lat.summary();
  await closeAll(signed.clients);
  const ef = errorFigures();
  if (stalls > 0) notes.push(`${stalls} stalled windows reset`);
  if (dup > 0) notes.push(`${dup} duplicate or late deliveries`);
  const lostWin = open ? Math.max(0, expectedWin - deliveredWin) : Math.max(0, expected - delivered);
  return {
    figures: {
      'deliveries/s': deliveredWin / (open ? a.duration : win),
      // Contention-robust views: the machine is shared, and server + load generator split what is left of it.
      'deliveries/s, CPU-normalized': open ? NaN
        : (deliveredWin / win) * (100 * os.cpus().length) / Math.max(1, res.cpuPct + selfPct),
      'deliveries per server CPU-s': (deliveredWin / (open ? a.duration : win)) / Math.max(0.01, res.cpuPct / 100),
      'msgs sent/s': sentWin / win,
      'p50 ms': s.p50,
      'p99 ms': s.p99,
      'p999 ms': s.p999,
      'server CPU %': res.cpuPct,
      // Per delivery, from /proc: the whole server, and its main (socket) thread alone.
      'server CPU µs per delivery': open ? NaN : (res.cpuPct / 100) / Math.max(1, deliveredWin / win) * 1e6,
      'main-thread CPU µs per delivery': open ? NaN : (res.mainPct / 100) / Math.max(1, deliveredWin / win) * 1e6,
      'server RSS MB': res.peakRss / 1048576,
      'loadgen CPU %': selfPct,
      'other CPU %': Math.max(0, res.machinePct - res.cpuPct - selfPct - (natsRes?.cpuPct ?? 0)),
      ...clusterFigures,
      lost: lostWin,
      errors: ef.errors,
      ...disk,
      ...(eph ? {
        'typing sent/s': typingSent / Math.max(0.001, (tSent - t0) / 1000),
        'typing frames recv/s': typingRecv / Math.max(0.001, (tSent - t0) / 1000),
        'presence frames recv/s': presenceRecv / Math.max(0.001, (tSent - t0) / 1000),
        'churn sign-ins': churns,
      } : {}),
    },
    notes: [...notes, ...ef.notes],
  };
}

function seedOf(label: string, i: number): Uint8Array {
  return createHash('sha256').update(`imgc-bench-key/${label}/${i}`).digest();
}

/** Sign-in rate: `count` handshakes, `concurrency` at a time, with sr25519 signatures when `signed`. */
export async function signin(a: SigninArgs): Promise<RunResult> {
  resetCounters();
  const notes: string[] = [];
  let accs: string[];
  let signers: Signer[] | undefined;
  if (a.signed) {
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
    const pairs = Array.from({ length: a.count }, (_, i) => keyring.addFromSeed(seedOf(a.label, i)));
    accs = pairs.map((p) => p.address);
    signers = pairs.map((p) => ({ sign: (spam: string) => u8aToHex(p.sign(stringToU8a(spam))) }));
  } else {
    accs = Array.from({ length: a.count }, (_, i) => openAccount(`${a.label}/signin`, i));
  }
  const watch = new ProcWatch(a.serverPid);
  const self = new SelfCpu();
  watch.start();
  const r = await signInMany(a.url, accs, undefined, { concurrency: a.concurrency, deadlineMs: 120_000, signers });
  const res = watch.stop();
  const selfPct = self.pct();
  const lat = new Latency();
  const srv = new Latency();
  for (const c of r.clients) {
    lat.add(c.tWelcome - c.tConnect);
    srv.add(c.tWelcome - c.tActive);
  }
  await closeAll(r.clients);
  let resumed: Record<string, number> = {};
  if (a.resume) {
    // Every client that got in reconnects at once with its token (the floor gives none: plain reconnect).
    await sleep(1000);
    const back = r.clients;
    const tokens = back.map((c) => c.token);
    const watch2 = new ProcWatch(a.serverPid);
    const self2 = new SelfCpu();
    watch2.start();
    const rr = await signInMany(a.url, back.map((c) => c.acc), undefined, { concurrency: back.length, deadlineMs: 120_000, tokens });
    const res2 = watch2.stop();
    const self2Pct = self2.pct();
    const rl = new Latency();
    for (const c of rr.clients) rl.add(c.tWelcome - c.tConnect);
    await closeAll(rr.clients);
    if (rr.failed > 0) notes.push(`${rr.failed} resume sign-ins failed (${rr.firstError})`);
    const rs = rl.summary();
    const sigRate = r.clients.length / (r.ms / 1000);
    const resRate = rr.clients.length / (rr.ms / 1000);
    resumed = {
      'resume sign-ins/s (all at once)': resRate,
      'resume/sig (same server)': resRate / sigRate,
      'resume p50 ms': rs.p50,
      'resume p99 ms': rs.p99,
      'tokens received': tokens.filter((x) => x !== undefined).length,
      'resume server CPU %': res2.cpuPct,
      'resume loadgen CPU %': self2Pct,
    };
  }
  if (r.failed > 0) notes.push(`${r.failed} sign-ins failed (${r.firstError})`);
  const s = lat.summary();
  const sv = srv.summary();
  const ef = errorFigures();
  return {
    figures: {
      'sign-ins/s': r.clients.length / (r.ms / 1000),
      'p50 ms': s.p50,
      'p99 ms': s.p99,
      'active→Welcome p50 ms': sv.p50,
      'active→Welcome p99 ms': sv.p99,
      'server CPU %': res.cpuPct,
      'server RSS MB': res.peakRss / 1048576,
      'loadgen CPU %': selfPct,
      'other CPU %': Math.max(0, res.machinePct - res.cpuPct - selfPct),
      ...resumed,
      errors: ef.errors,
    },
    notes: [...notes, ...ef.notes],
  };
}

/** A burst to offline accounts, then its delivery when they sign in. */
export async function offline(a: OfflineArgs): Promise<RunResult> {
  resetCounters();
  const notes: string[] = [];
  const label = `${a.label}/offline`;
  const senderAccs = Array.from({ length: a.senders }, (_, i) => openAccount(`${label}/s`, i));
  const probeAcc = openAccount(`${label}/p`, 0);
  const rcptAccs = Array.from({ length: a.recipients }, (_, i) => openAccount(`${label}/r`, i));
  let barriers = 0;
  const probe = await signIn(a.url, probeAcc, (_c, data) => {
    if (readMark(data)) barriers++;
  });
  const senders = await signInMany(a.url, senderAccs, undefined, { concurrency: 10, deadlineMs: 30_000 });
  const watch = new ProcWatch(a.serverPid);
  const self = new SelfCpu();
  watch.start();
  const tBurst = now();
  let burst = 0;
  for (let i = 0; i < a.recipients; i++) {
    const s = senders.clients[i % senders.clients.length];
    const prefix = `{"cat":"chat","act":"chat","to":${JSON.stringify(rcptAccs[i])},"msg":{"b":[`;
    for (let k = 0; k < a.perRecipient; k++) {
      s.sendRaw(`${prefix}${now()},${i},${k}]}`);
      burst++;
    }
  }
  for (const s of senders.clients) s.sendRaw(`{"cat":"chat","act":"chat","to":${JSON.stringify(probeAcc)},"msg":{"b":[${now()},-1,0]}`);
  const barrierEnd = now() + 60_000;
  while (barriers < senders.clients.length && now() < barrierEnd) await sleep(5);
  const tStored = now();
  if (barriers < senders.clients.length) notes.push('not every burst was acknowledged by its barrier within 60 s');
  const storedRss = watch.rss();

  // Phase 2: recipients sign in; each should receive perRecipient stored messages.
  const done = new Latency();
  let got = 0;
  let finished = 0;
  let tLast = 0;
  const tSign = now();
  const r = await signInMany(a.url, rcptAccs, (c, data) => {
    if (!readMark(data)) return;
    got++;
    c.got++;
    tLast = now();
    if (c.got === a.perRecipient) {
      finished++;
      done.add(tLast - c.tActive);
    }
  }, { concurrency: a.concurrency, deadlineMs: 60_000 });
  const drainEnd = now() + 30_000;
  while (got < burst && now() < drainEnd) await sleep(20);
  const res = watch.stop();
  const selfPct = self.pct();
  await closeAll([probe, ...senders.clients, ...r.clients]);
  if (r.failed > 0) notes.push(`${r.failed} recipient sign-ins failed (${r.firstError})`);
  const s = done.summary();
  const ef = errorFigures();
  return {
    figures: {
      'stored msgs/s': burst / ((tStored - tBurst) / 1000),
      'delivered msgs/s': tLast > tSign ? got / ((tLast - tSign) / 1000) : 0,
      'sign-in→all stored p50 ms': s.p50,
      'sign-in→all stored p99 ms': s.p99,
      'RSS after store MB': storedRss / 1048576,
      'server CPU %': res.cpuPct,
      'server RSS MB': res.peakRss / 1048576,
      'loadgen CPU %': selfPct,
      'other CPU %': Math.max(0, res.machinePct - res.cpuPct - selfPct),
      lost: Math.max(0, burst - got),
      'accounts complete': finished,
      errors: ef.errors,
    },
    notes: [...notes, ...ef.notes],
  };
}

// ---- capacity: held across several agents, driven step by step ----

let held: BenchClient[] = [];
let capLabel = '';

export async function capConnect(a: CapConnectArgs): Promise<{ held: number; failed: number; ms: number; firstError: string }> {
  resetCounters();
  capLabel = a.label;
  const accs = Array.from({ length: a.count }, (_, i) => openAccount(`${a.label}/cap`, a.offset + i));
  const urls = a.urls;
  const r = await signInMany(a.url, accs, undefined, {
    concurrency: a.concurrency, deadlineMs: a.deadlineMs,
    ...(urls && urls.length > 0 ? { urlOf: (i: number) => urls[(a.offset + i) % urls.length]! } : {}),
    ...(a.localAddress !== undefined ? { localAddress: a.localAddress } : {}),
  });
  held = r.clients;
  return { held: held.length, failed: r.failed, ms: r.ms, firstError: r.firstError };
}

/** Sends `samples` direct messages between held clients of this agent and counts arrivals. */
export async function capVerify(samples: number): Promise<{ sent: number; ok: number }> {
  const live = held.filter((c) => c.open);
  if (live.length < 2) return { sent: 0, ok: 0 };
  let ok = 0;
  const h = (): void => {
    ok++;
  };
  let sent = 0;
  for (let s = 0; s < samples; s++) {
    const i = Math.floor(Math.random() * live.length);
    const j = (i + 1 + Math.floor(Math.random() * (live.length - 1))) % live.length;
    live[j].handler = (c, data) => {
      if (readMark(data)) h();
    };
    live[i].sendRaw(`{"cat":"chat","act":"chat","to":${JSON.stringify(live[j].acc)},"msg":{"b":[${now()},${capLabel.length},${s}]}`);
    sent++;
  }
  const end = now() + 5000;
  while (ok < sent && now() < end) await sleep(20);
  return { sent, ok };
}

export function capStatus(): { open: number; errors: number } {
  return { open: held.filter((c) => c.open).length, errors: counters.errorFrames + counters.closedUnexpected };
}

export async function capClose(): Promise<{ closed: number }> {
  const n = held.length;
  await closeAll(held);
  held = [];
  return { closed: n };
}

// ---- agent entry: requests over IPC ----

interface Call {
  id: number;
  op: string;
  args: unknown;
}

async function dispatch(op: string, args: unknown): Promise<unknown> {
  switch (op) {
    case 'flow': return flow(args as FlowArgs);
    case 'signin': return signin(args as SigninArgs);
    case 'offline': return offline(args as OfflineArgs);
    case 'capConnect': return capConnect(args as CapConnectArgs);
    case 'capVerify': return capVerify(Number(args));
    case 'capStatus': return capStatus();
    case 'capClose': return capClose();
    case 'stormSetup': return stormSetup(args as StormSetupArgs);
    case 'stormArm': return stormArm();
    case 'stormWait': return stormWait(args as { deadlineMs: number });
    default: throw new Error(`unknown op ${op}`);
  }
}

if (require.main === module && process.argv.includes('--agent') && process.send) {
  process.on('message', (m: Call) => {
    dispatch(m.op, m.args).then(
      (value) => process.send?.({ id: m.id, ok: true, value }),
      (e: Error) => process.send?.({ id: m.id, ok: false, error: e.stack ?? e.message }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  // Hard lifetime cap: an agent never outlives a run by much.
  setTimeout(() => process.exit(3), 20 * 60_000).unref();
} else if (require.main === module) {
  // Standalone CLI: the driver forks agents of this same file.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  void (require('./driver') as typeof import('./driver')).cli(process.argv.slice(2));
}
