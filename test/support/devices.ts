/**
 * Helpers for the own-device and edit/delete tests: signing in with own-device sync
 * (`"sync":"own"` on `active`), making a group, and finding frames.
 */
import { expect } from 'chai';
import type { Account } from './accounts';
import { Client, ClientPool, isNotice, type Frame } from './client';

/** Connects and signs in; with `own`, asks for own-device sync. Resolves once the Welcome came. */
export async function device(pool: ClientPool, url: string, acc: Account, name: string, own: boolean): Promise<Client> {
  const c = await pool.connect(url, name);
  c.request(own ? { act: 'active', acc: acc.address, sync: 'own' } : { act: 'active', acc: acc.address });
  const f = await c.next((x) => isNotice('chat', 'active')(x) || x.type === 'error', 5000, 'welcome');
  expect(f.type, JSON.stringify(f)).to.equal('notice');
  c.account = acc.address;
  return c;
}

let n = 0;

/** `c` creates a group of `others` (and itself); resolves with its id once every given member socket has the create notice. */
export async function makeGroup(c: Client, others: Account[], members: Client[] = []): Promise<string> {
  const cb = `mk${++n}`;
  c.request({ cat: 'group', act: 'create', list: others.map((a) => a.address), callback: cb });
  const gid = (await c.next((f) => f.method?.callback === cb, 5000, 'create answer')).msg.id as string;
  for (const m of members) await m.next((f) => isNotice('group', 'create')(f) && f.msg?.id === gid, 5000, 'create notice');
  return gid;
}

/** Sends a request with a callback; resolves with its answer (notice or error). */
export async function ask(c: Client, r: Frame): Promise<Frame> {
  const cb = `q${++n}`;
  c.request({ ...r, callback: cb });
  return c.next((f) => f.method?.callback === cb || f.request?.callback === cb, 5000, `answer ${cb}`);
}
