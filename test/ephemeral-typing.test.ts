/**
 * Typing over real sockets: relayed to every device of the other side of a direct conversation and
 * to the online members of a group (never back to the sender, never to a non-member's request),
 * throttled to one per conversation per second per sender (the excess dropped and counted in
 * /status), and never stored: after stop, the data directory holds no trace of an account that only
 * typed, while a chat message's marker is found there by the same search.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomAddresses } from './support/accounts';
import { isNotice, sleep } from './support/client';
import { getStatus, startServer } from './support/server';
import { useServer } from './support/suite';

const isTyping = isNotice('chat', 'typing');

/** Whether any file under `dir` contains `needle` (its bytes, as UTF-8). */
function dirContains(dir: string, needle: string): boolean {
  const n = Buffer.from(needle);
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) { if (dirContains(p, needle)) return true; continue; }
    if (readFileSync(p).indexOf(n) >= 0) return true;
  }
  return false;
}

describe('ephemeral: typing', function () {
  this.timeout(60_000);
  const ctx = useServer(['--workers', '2'], { status: true });
  const { clients, signedIn } = ctx;

  it('direct: every device of the other side gets it, the sender none; one per second per conversation, the rest dropped and counted', async () => {
    const [alice, bob, carol] = randomAddresses(3);
    const a = await signedIn(alice!, 'alice');
    const b1 = await signedIn(bob!, 'bob 1');
    const b2 = await signedIn(bob!, 'bob 2');
    const c = await signedIn(carol!, 'carol');
    const before = (await getStatus(ctx.srv)) as { delivery: { typing: { dropped: number; relayed: number } } };
    for (let i = 0; i < 5; i++) a.request({ cat: 'chat', act: 'typing', with: bob });
    const f = await b1.next(isTyping, 3000, 'typing');
    expect(f).to.deep.equal({ type: 'notice', msg: { account: alice, with: alice }, method: { cat: 'chat', act: 'typing' } });
    await b2.next(isTyping, 3000, 'typing on the second device');
    expect(await b1.none(isTyping, 400)).to.deep.equal([], 'throttled: one within the second');
    expect(await b2.none(isTyping, 0)).to.deep.equal([]);
    expect(await a.none(isTyping, 0)).to.deep.equal([], 'not back to the sender');
    expect(await c.none(isTyping, 0)).to.deep.equal([], 'nobody else');
    const after = (await getStatus(ctx.srv)) as typeof before;
    expect(after.delivery.typing.dropped - before.delivery.typing.dropped).to.equal(4);
    expect(after.delivery.typing.relayed - before.delivery.typing.relayed).to.equal(1);
    // Another conversation has its own budget; the same one passes again after a second.
    a.request({ cat: 'chat', act: 'typing', with: carol });
    await c.next(isTyping, 3000, 'typing to carol');
    await sleep(700);
    a.request({ cat: 'chat', act: 'typing', with: bob });
    await b1.next(isTyping, 3000, 'typing again after a second');
  });

  it('group: the online members but the sender get it; a non-member\'s is dropped', async () => {
    const [alice, bob, carol, dave, eve] = randomAddresses(5);
    const a = await signedIn(alice!, 'alice');
    const b = await signedIn(bob!, 'bob');
    const c = await signedIn(carol!, 'carol');
    const e = await signedIn(eve!, 'eve (not a member)');
    a.request({ cat: 'group', act: 'create', list: [bob, carol, dave], callback: 'g' });
    const gid = (await a.next(isNotice('group', 'create'), 5000)).msg.id as string;
    await b.next(isNotice('group', 'create'), 5000);
    await c.next(isNotice('group', 'create'), 5000);
    b.request({ cat: 'chat', act: 'typing', group: gid });
    expect((await a.next(isTyping, 3000)).msg).to.deep.equal({ account: bob, group: gid });
    expect((await c.next(isTyping, 3000)).msg).to.deep.equal({ account: bob, group: gid });
    expect(await b.none(isTyping, 300)).to.deep.equal([]);
    expect(await e.none(isTyping, 0)).to.deep.equal([]);
    e.request({ cat: 'chat', act: 'typing', group: gid });
    expect(await a.none(isTyping, 400)).to.deep.equal([], 'a non-member\'s typing is dropped');
    // A member that joins later gets it (the member list follows the group's changes).
    a.request({ cat: 'group', act: 'join', id: gid, account: eve, callback: 'j' });
    await e.next(isNotice('group', 'join'), 5000);
    await sleep(1100);
    b.request({ cat: 'chat', act: 'typing', group: gid });
    expect((await e.next(isTyping, 3000)).msg).to.deep.equal({ account: bob, group: gid });
  });

  it('is never stored: no trace of an account that only typed in the data directory after stop (a chat marker is found)', async () => {
    const s = await startServer(['--workers', '2']);
    try {
      const [typist, reader, writer] = randomAddresses(3);
      const t = await signedIn(typist!, 'typist', s);
      const r = await signedIn(reader!, 'reader', s);
      const w = await signedIn(writer!, 'writer', s);
      const marker = `marker-${Date.now()}-${Math.random().toString(36).slice(2)}`;
      w.request({ cat: 'chat', act: 'chat', to: reader, msg: marker, callback: 'm' });
      await w.next((f) => f.method?.callback === 'm', 5000);
      for (let i = 0; i < 3; i++) {
        t.request({ cat: 'chat', act: 'typing', with: reader });
        await r.next(isTyping, 3000);
        await sleep(1050);
      }
      await clients.closeAll();
      await s.stop({ keepData: true });
      expect(dirContains(s.dataDir, marker), 'the search finds a stored message').to.equal(true);
      expect(dirContains(s.dataDir, typist!), 'typing left a trace').to.equal(false);
    } finally {
      s.removeData();
    }
  });
});
