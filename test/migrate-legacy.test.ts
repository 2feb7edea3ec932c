import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { legacyRowToFrame, readLegacyBackup, type LegacyGroup } from '../src/migrate/legacy';
import { scratchEachTest, type Captured } from './support/store-log';

// Well-known development accounts (//Alice, //Bob, //Charlie), SS58 prefix 42.
const ALICE = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const BOB = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const CHARLIE = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';
const GID = 'GDqwertyuiop';

/** What the first service wrote: valid entries mixed with the kind of damage it let through. */
function sample(): unknown {
  const group = {
    id: GID, group: [ALICE, BOB, 'not-an-address', BOB], status: 1, create: 1690000000000, update: 1690000100000,
    notice: [], manager: ALICE, founder: ALICE, announce: { content: 'welcome', expired: 0 },
    permit: { free: false, announce: true }, block: [CHARLIE], nick: 'team',
  };
  return {
    history: {
      [BOB]: [
        { from: ALICE, to: BOB, content: 'hi bob', stamp: 1690000200000 },
        { from: ALICE, to: BOB, content: { text: 'group hello', at: [1, 2] }, stamp: 1690000300000, group: GID },
        { type: 'notice', from: ALICE, to: BOB, content: { method: { act: 'create', cat: 'group' }, data: { id: GID } }, stamp: 1690000000001, group: GID },
        { from: ALICE, to: 'bob', content: 'bad receiver', stamp: 1 },
        { from: ALICE, to: BOB, content: 'no stamp' },
        { type: 'notice', from: ALICE, to: BOB, content: 'not an object', stamp: 2 },
        'a string row',
      ],
      [CHARLIE]: [{ from: BOB, to: GID, content: 'group row naming the group', stamp: 1690000400000, group: GID }],
      'not-an-account': [{ from: ALICE, to: BOB, content: 'x', stamp: 3 }],
      [ALICE]: 'not a list',
    },
    group: {
      [GID]: group,
      GDbroken0000: { ...group, id: 'GDbroken0000', manager: 42 },
      GDmismatch00: { ...group, id: 'GDsomething0' },
      'bad id': { ...group, id: 'bad id' },
      GDminimal000: { group: [BOB], manager: BOB },
    },
    vertification: { [ALICE]: { amount: '1.234', block: 100, hash: '0xabc' }, junk: { x: 1 }, [BOB]: null },
  };
}

describe('migrate: legacy backup reader', function () {
  let dir: string;
  let logs: Captured;
  scratchEachTest('legacy', (d, l) => { dir = d; logs = l; });

  it('reads a realistic backup file, skipping and counting invalid entries', () => {
    const file = path.join(dir, 'backup');
    fs.writeFileSync(file, JSON.stringify(sample()));
    const b = readLegacyBackup(file);

    expect([...b.groups.keys()]).to.deep.equal([GID, 'GDminimal000']);
    const g = b.groups.get(GID)!;
    expect(g).to.deep.equal({
      id: GID, group: [ALICE, BOB], status: 1, create: 1690000000000, update: 1690000100000, notice: [],
      manager: ALICE, founder: ALICE, announce: { content: 'welcome', expired: 0 }, permit: { free: false, announce: true },
      block: [CHARLIE], nick: 'team',
    } satisfies LegacyGroup);
    expect(b.groups.get('GDminimal000')).to.deep.include({
      founder: BOB, status: 1, permit: { free: true, announce: false }, announce: { content: '', expired: 0 }, block: [], nick: '',
    });

    expect([...b.history.keys()]).to.deep.equal([BOB, CHARLIE]);
    const rows = b.history.get(BOB)!;
    expect(rows.map((r) => r.type)).to.deep.equal(['message', 'message', 'notice']);
    expect(b.history.get(CHARLIE)).to.deep.equal([
      { type: 'message', from: BOB, to: CHARLIE, content: 'group row naming the group', stamp: 1690000400000, group: GID },
    ]);

    expect([...b.verification.keys()]).to.deep.equal([ALICE]);
    expect(b.verification.get(ALICE)).to.deep.equal({ amount: '1.234', block: 100, hash: '0xabc' });

    expect(b.skipped).to.deep.equal({ groups: 3, members: 1, accounts: 2, rows: 4, verifications: 2 });
    const warned = logs.warnings();
    expect(warned.length).to.equal(3 + 1 + 2 + 4 + 2);
    expect(warned.every((l) => l.level === 40)).to.equal(true);
  });

  it('turns stored rows into the exact frames clients receive live', () => {
    const file = path.join(dir, 'backup');
    fs.writeFileSync(file, JSON.stringify(sample()));
    const rows = readLegacyBackup(file).history.get(BOB)!;
    const frames = rows.map((r) => JSON.stringify(legacyRowToFrame(r)));
    expect(frames).to.deep.equal([
      `{"msg":"hi bob","from":"${ALICE}","to":"${BOB}","method":{"cat":"chat","act":"chat"},"type":"message"}`,
      `{"msg":{"text":"group hello","at":[1,2]},"from":"${ALICE}","group":"${GID}","to":"${BOB}","method":{"act":"message","cat":"group"},"cat":"group","type":"message"}`,
      `{"type":"notice","msg":{"id":"${GID}"},"method":{"act":"create","cat":"group"}}`,
    ]);
  });

  it('imports rows whose group is the first service\'s "GROUP ID" placeholder (or any non-id) as rows without a group', () => {
    const file = path.join(dir, 'backup');
    const nick = { method: { act: 'update', cat: 'group' }, data: { key: 'nick', value: 'team', id: GID, from: ALICE } };
    const members = { method: { act: 'members', cat: 'group' }, data: { id: GID, from: ALICE } };
    fs.writeFileSync(file, JSON.stringify({
      history: {
        [BOB]: [
          { type: 'notice', from: ALICE, to: BOB, content: { method: { act: 'create', cat: 'group' }, data: { id: GID } }, stamp: 1, group: GID },
          { type: 'notice', from: ALICE, to: BOB, content: nick, stamp: 2, group: 'GROUP ID' },
          { type: 'notice', from: ALICE, to: BOB, content: members, stamp: 3, group: 'GROUP ID' },
          { from: ALICE, to: BOB, content: 'placeholder on a message', stamp: 4, group: 'GROUP ID' },
          { type: 'notice', from: ALICE, to: BOB, content: members, stamp: 5, group: 42 },
        ],
      },
      group: {},
      vertification: null,
    }));
    const b = readLegacyBackup(file);
    expect(b.skipped.rows).to.equal(0);
    expect(logs.warnings()).to.deep.equal([]);
    const rows = b.history.get(BOB)!;
    expect(rows.map((r) => r.stamp)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(rows.map((r) => r.group)).to.deep.equal([GID, undefined, undefined, undefined, undefined]);
    expect(rows.slice(1).every((r) => !('group' in r))).to.equal(true);
    expect(rows.map((r) => JSON.stringify(legacyRowToFrame(r)))).to.deep.equal([
      `{"type":"notice","msg":{"id":"${GID}"},"method":{"act":"create","cat":"group"}}`,
      `{"type":"notice","msg":${JSON.stringify(nick.data)},"method":{"act":"update","cat":"group"}}`,
      `{"type":"notice","msg":${JSON.stringify(members.data)},"method":{"act":"members","cat":"group"}}`,
      `{"msg":"placeholder on a message","from":"${ALICE}","to":"${BOB}","method":{"cat":"chat","act":"chat"},"type":"message"}`,
      `{"type":"notice","msg":${JSON.stringify(members.data)},"method":{"act":"members","cat":"group"}}`,
    ]);
  });

  it('accepts "vertification": null and missing sections; throws only for a file that is not a JSON object', () => {
    const file = path.join(dir, 'backup');
    fs.writeFileSync(file, JSON.stringify({ history: {}, group: {}, vertification: null }));
    const b = readLegacyBackup(file);
    expect(b.groups.size + b.history.size + b.verification.size).to.equal(0);
    fs.writeFileSync(file, '{}');
    expect(readLegacyBackup(file).skipped).to.deep.equal({ groups: 0, members: 0, accounts: 0, rows: 0, verifications: 0 });
    fs.writeFileSync(file, '{"history": {');
    expect(() => readLegacyBackup(file)).to.throw(/not JSON/);
    fs.writeFileSync(file, '[1,2]');
    expect(() => readLegacyBackup(file)).to.throw(/not a JSON object/);
  });
});
