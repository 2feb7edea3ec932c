/**
 * Crash safety of the conversation logs (issue 9): a sender streams direct messages (to a receiver
 * that does not acknowledge and to one that does) and group messages, all with `mid`, and the
 * server is killed with SIGKILL mid-stream, three times. After each restart both receivers sign
 * in; by sign-in and by `history` every acknowledged message is there exactly once, and the `seq`
 * each receiver sees keeps increasing across restarts (an offset is never handed out twice). Then
 * an online backup taken under load restores every message acknowledged before it began.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { Client, isMessage, isNotice, sleep, type Frame } from './support/client';
import { startServer, statusFetch, tempDir, type ServerHandle } from './support/server';
import { drainQuiet, expectRisingSeq, pageAll } from './support/history';

type Kind = 'r1' | 'r2' | 'g';
const KINDS: Kind[] = ['r1', 'r2', 'g'];
/** Group messages sent per cycle stay under the sign-in bound (200), so sign-in delivers them all. */
const PER_CYCLE = 150;

describe('history: SIGKILL mid-stream of direct and group messages, and an online backup under load', function () {
  this.timeout(90_000);
  const ARGS = ['--rate-limit', '100000'];
  let srv: ServerHandle | undefined;
  let restored: ServerHandle | undefined;
  let copy: string | undefined;
  let s: Account, r1: Account, r2: Account;
  let gid: string;

  before(async () => {
    await accountsReady();
    [s, r1, r2] = newAccounts(3) as [Account, Account, Account];
  });
  after(async () => {
    await restored?.stop();
    await srv?.stop();
    if (copy) rmSync(copy, { recursive: true, force: true });
  });

  /** What a sender acknowledged, by kind: mids. */
  interface Stream { acked: Record<Kind, Set<string>>; sent: Record<Kind, number>; stop(): Promise<void>; client: Client }

  /** Streams one message of each kind every few ms until `stop`; records every acknowledged mid. */
  async function stream(server: ServerHandle, tag: string, max = PER_CYCLE): Promise<Stream> {
    const c = await Client.connect(server.url, { name: `sender-${tag}` });
    await c.signIn(s);
    const acked: Record<Kind, Set<string>> = { r1: new Set(), r2: new Set(), g: new Set() };
    const sent: Record<Kind, number> = { r1: 0, r2: 0, g: 0 };
    c.ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      if (f.type !== 'notice' || typeof f.msg?.mid !== 'string') return;
      const kind = (f.msg.mid as string).split(':')[0] as Kind;
      if (isNotice('chat', 'chat')(f) || isNotice('group', 'chat')(f)) acked[kind].add(f.msg.mid as string);
    });
    let running = true;
    const loop = (async () => {
      for (let i = 0; running && i < max; i++) {
        if (!c.open) break;
        for (const kind of KINDS) {
          const mid = `${kind}:${tag}:${i}`;
          if (kind === 'g') c.request({ cat: 'group', act: 'chat', to: gid, msg: { mid }, mid });
          else c.request({ cat: 'chat', act: 'chat', to: (kind === 'r1' ? r1 : r2).address, msg: { mid }, mid });
          sent[kind]++;
        }
        c.clear();
        await sleep(4);
      }
    })();
    return { acked, sent, client: c, stop: async () => { running = false; await loop; } };
  }

  /** Signs `acc` in, takes the backlog; in ack mode acknowledges all of it. */
  async function signInAndRead(server: ServerHandle, acc: Account, ack: boolean): Promise<Frame[]> {
    const c = await Client.connect(server.url, { name: ack ? 'r2' : 'r1' });
    await c.signIn(acc);
    const frames = await drainQuiet(c, 500);
    const last = frames.filter((f) => typeof f.seq === 'number').at(-1);
    if (ack && last) c.request({ cat: 'chat', act: 'ack', seq: last.seq });
    // The delivered position is written in the background (at most 250 ms): let it be written.
    await sleep(600);
    await c.close();
    return frames;
  }

  const midsOf = (frames: Frame[], kind: Kind): string[] => frames.filter(isMessage((f) => typeof f.msg?.mid === 'string' && f.msg.mid.startsWith(`${kind}:`))).map((f) => f.msg.mid as string);

  function expectOnce(list: string[], acked: Iterable<string>, what: string): void {
    const seen = new Map<string, number>();
    for (const m of list) seen.set(m, (seen.get(m) ?? 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1).map(([m]) => m);
    expect(twice, `${what}: delivered more than once`).to.deep.equal([]);
    const missing = [...acked].filter((m) => !seen.has(m));
    expect(missing, `${what}: acknowledged but missing`).to.deep.equal([]);
  }

  it('3 cycles: everything acknowledged is there once, by sign-in and by history; seq never reused', async () => {
    srv = await startServer(ARGS);
    // R2 acknowledges: one ack puts it in ack mode. The group of all three.
    const c2 = await Client.connect(srv.url);
    await c2.signIn(r2);
    c2.request({ cat: 'chat', act: 'ack', seq: 0 });
    await sleep(150);
    await c2.close();
    const cs = await Client.connect(srv.url);
    await cs.signIn(s);
    cs.request({ cat: 'group', act: 'create', list: [r1.address, r2.address], callback: 'mk' });
    gid = (await cs.next((f) => f.method?.callback === 'mk')).msg.id as string;
    await cs.close();

    const acked: Record<Kind, Set<string>> = { r1: new Set(), r2: new Set(), g: new Set() };
    const got: Record<'r1' | 'r2', Frame[]> = { r1: [], r2: [] };
    for (let cycle = 0; cycle < 3; cycle++) {
      const st = await stream(srv, `c${cycle}`);
      // Kill once a good part is acknowledged, with messages still on their way.
      const deadline = Date.now() + 15_000;
      while (st.acked.g.size < 60 && Date.now() < deadline) await sleep(5);
      const sentAtKill = st.sent.g;
      const exit = await srv.kill('SIGKILL');
      await st.stop();
      expect(exit.signal).to.equal('SIGKILL');
      expect(sentAtKill, 'killed while the stream was still running').to.be.below(PER_CYCLE);
      for (const k of KINDS) {
        expect(st.acked[k].size, `cycle ${cycle}: ${k} acknowledged`).to.be.greaterThan(20);
        for (const m of st.acked[k]) acked[k].add(m);
      }
      srv = await startServer(ARGS, { dataDir: srv.dataDir });

      const f1 = await signInAndRead(srv, r1, false);
      const f2 = await signInAndRead(srv, r2, true);
      got.r1.push(...f1);
      got.r2.push(...f2);
      for (const [name, frames] of [['r1', got.r1], ['r2', got.r2]] as const) {
        expect(frames.filter(isNotice('group', 'limited')), `${name}: no limited notice`).to.deep.equal([]);
        // Across every sign-in so far: the seq keeps rising, never reused after a restart.
        expectRisingSeq(frames, `${name} seq after cycle ${cycle}`);
        expectOnce(midsOf(frames, name), acked[name], `${name} direct, by sign-in, cycle ${cycle}`);
        expectOnce(midsOf(frames, 'g'), acked.g, `${name} group, by sign-in, cycle ${cycle}`);
      }
      // By history: the direct conversations and the group, read whole.
      const h = await Client.connect(srv.url, { name: 'reader' });
      await h.signIn(r1);
      const d1 = await pageAll(h, { with: s.address }, 'backward');
      expectOnce(d1.messages.map((f) => f.msg.mid as string), acked.r1, `r1 direct, by history, cycle ${cycle}`);
      expectRisingSeq(d1.messages);
      const g1 = await pageAll(h, { group: gid }, 'forward');
      expectOnce(g1.messages.filter((f) => f.type === 'message').map((f) => f.msg.mid as string), acked.g, `group, by history, cycle ${cycle}`);
      expectRisingSeq(g1.messages);
      await h.close();
      const h2 = await Client.connect(srv.url, { name: 'reader2' });
      await h2.signIn(r2);
      const d2 = await pageAll(h2, { with: s.address }, 'forward');
      expectOnce(d2.messages.map((f) => f.msg.mid as string), acked.r2, `r2 direct, by history, cycle ${cycle}`);
      await h2.close();
    }
  });

  it('an online backup taken under load restores everything acknowledged before it began', async () => {
    expect(srv, 'the first test left a server').to.not.equal(undefined);
    await srv!.stop({ keepData: true });
    srv = await startServer(ARGS, { dataDir: srv!.dataDir, status: true });
    const st = await stream(srv, 'bk', 100_000);
    const deadline = Date.now() + 15_000;
    while (st.acked.g.size < 100 && Date.now() < deadline) await sleep(5);
    expect(st.acked.g.size).to.be.at.least(100);
    const before: Record<Kind, string[]> = { r1: [...st.acked.r1], r2: [...st.acked.r2], g: [...st.acked.g] };
    copy = join(tempDir('imgc-backup-'), 'copy');
    const res = await statusFetch(srv, `/backup?dest=${encodeURIComponent(copy)}`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
    const body = await res.json() as Frame;
    expect(res.status, JSON.stringify(body)).to.equal(200);
    expect(body.ok).to.equal(true);
    // The stream went on during the backup.
    const during = st.acked.g.size;
    await sleep(100);
    await st.stop();
    await st.client.close();
    expect(st.acked.g.size).to.be.at.least(during);

    restored = await startServer(ARGS, { dataDir: copy });
    const c1 = await Client.connect(restored.url, { name: 'r1-restored' });
    await c1.signIn(r1);
    await drainQuiet(c1, 300);
    const d1 = await pageAll(c1, { with: s.address }, 'backward');
    expectOnce(d1.messages.map((f) => f.msg.mid as string).filter((m) => m.includes(':bk:')), before.r1, 'r1 direct in the restored copy');
    const g = await pageAll(c1, { group: gid }, 'backward');
    expectOnce(g.messages.filter((f) => f.type === 'message').map((f) => f.msg.mid as string).filter((m) => m.includes(':bk:')), before.g, 'group in the restored copy');
    await c1.close();
    const c2 = await Client.connect(restored.url, { name: 'r2-restored' });
    await c2.signIn(r2);
    const d2 = await pageAll(c2, { with: s.address }, 'backward');
    expectOnce(d2.messages.map((f) => f.msg.mid as string).filter((m) => m.includes(':bk:')), before.r2, 'r2 direct in the restored copy');
    await c2.close();
  });
});
