/**
 * Hostile input against the real server: oversized and malformed frames, hostile nesting, huge
 * arrays, wrong types in every field of every schema, unknown cat/act, binary frames. Every frame
 * gets an error frame with a code (or, where the input is acceptable, its normal answer); the
 * connection and the server keep serving.
 */
import { expect } from 'chai';
import { newAccount, newAccounts, randomAddresses, type Account } from './support/accounts';
import { Client, isError, isMessage, isNotice, type Frame } from './support/client';
import { startServer, type ServerHandle } from './support/server';
import { useServer } from './support/suite';

const KNOWN_CODES = [41400, 41401, 44001, 44002, 44003, 44004, 44009, 44029, 44100, 44501, 44744, 45003, 45010];
const DEEP = 10_000;
const deepArray = (n: number): string => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

describe('core: hostile input', function () {
  const ctx = useServer(['--workers', '2']);
  const { clients, connect } = ctx;
  const online = async (name: string, account: Account = newAccount(), server = ctx.srv): Promise<Client> => {
    const c = await connect(name, server);
    await c.signIn(account);
    return c;
  };
  /** The server still serves: a new client signs in and a message reaches another new client. */
  const stillServing = async (server = ctx.srv): Promise<void> => {
    const [x, y] = newAccounts(2);
    const cx = await online('check-x', x, server);
    const cy = await online('check-y', y, server);
    cx.request({ cat: 'chat', act: 'chat', to: y.address, msg: 'still alive?' });
    expect(await cy.next(isMessage(), 5000, 'a message after the hostile input')).to.deep.include({ msg: 'still alive?', from: x.address });
  };
  /** The connection itself still works: a chat to itself comes back. */
  const connectionWorks = async (c: Client, me: Account): Promise<void> => {
    c.request({ cat: 'chat', act: 'chat', to: me.address, msg: 'ping-self' });
    expect(await c.next(isMessage((f) => f.msg === 'ping-self'), 5000, 'own message')).to.deep.include({ from: me.address, to: me.address });
  };

  describe('malformed frames', () => {
    it('a frame over 64 KiB gets 41400 and the connection keeps working', async () => {
      const me = newAccount();
      const c = await online('big', me);
      const big = JSON.stringify({ cat: 'chat', act: 'chat', to: me.address, msg: 'x'.repeat(100 * 1024), spam: c.spam });
      expect(big.length).to.be.greaterThan(64 * 1024);
      c.send(big);
      const err = await c.next(isError(), 5000, 'error for the oversized frame');
      expect(err).to.include({ type: 'error', code: 41400 });
      expect(err).to.have.all.keys('type', 'error', 'code', 'method', 'request');
      expect(await c.none(isMessage(), 200), 'the oversized message was delivered').to.deep.equal([]);
      await connectionWorks(c, me);
    });

    it('a frame just under 64 KiB is accepted', async () => {
      const me = newAccount();
      const c = await online('almost', me);
      const text = 'y'.repeat(60 * 1024);
      c.request({ cat: 'chat', act: 'chat', to: me.address, msg: text });
      expect((await c.next(isMessage(), 5000)).msg).to.equal(text);
    });

    it('a frame far over the limit (1 MiB) closes only that connection; the server keeps serving', async () => {
      const c = await online('huge');
      c.send(JSON.stringify({ act: 'chat', msg: 'z'.repeat(1024 * 1024), spam: c.spam }));
      const closed = await Promise.race([c.closed, c.next(isError(), 5000).then((f) => ({ frame: f }))]);
      if ('frame' in closed) expect(closed.frame.code).to.equal(41400);
      else expect(closed.code).to.be.oneOf([1009, 1006, 1008]);
      await stillServing();
    });

    it('the 1009 close has a 256 KiB floor: with --max-frame 16384 a 200 KiB frame gets 41400, a 300 KiB frame closes with 1009', async () => {
      const small = await startServer(['--workers', '1', '--max-frame', '16384']);
      try {
        const me = newAccount();
        const c = await clients.connect(small.url, 'floor');
        await c.signIn(me);
        // 200 KiB is over 4 × 16 KiB but under the floor: an error frame, and the socket stays.
        c.send(JSON.stringify({ cat: 'chat', act: 'chat', to: me.address, msg: 'x'.repeat(200 * 1024), spam: c.spam }));
        expect(await c.next(isError(), 5000, 'error for the 200 KiB frame')).to.include({ code: 41400 });
        await connectionWorks(c, me);
        c.send(JSON.stringify({ cat: 'chat', act: 'chat', to: me.address, msg: 'x'.repeat(300 * 1024), spam: c.spam }));
        expect((await c.closed).code).to.equal(1009);
      } finally {
        await small.stop();
      }
    });

    const junk: Array<[string, string]> = [
      ['invalid JSON', '{"act":"active",'],
      ['plain text', 'hello server'],
      ['an empty frame', ''],
      ['a JSON array', '[{"act":"active"}]'],
      ['a JSON number', '42'],
      ['JSON null', 'null'],
      ['a JSON string', '"active"'],
      ['JSON true', 'true'],
      ['a lone surrogate string', '"\\ud800"'],
    ];
    for (const [what, text] of junk) {
      it(`${what} gets 41400 with the reference error shape`, async () => {
        const me = newAccount();
        const c = await online('junk', me);
        c.send(text);
        const err = await c.next(isError(), 5000);
        expect(err).to.have.all.keys('type', 'error', 'code', 'method', 'request');
        expect(err.code).to.equal(41400);
        expect(err.error).to.be.a('string').and.not.empty;
        expect(err.method).to.have.all.keys('cat', 'act');
        await connectionWorks(c, me);
      });
    }

    it('junk before sign-in gets 41400 and sign-in still works afterwards', async () => {
      const c = await connect('early');
      for (const t of ['nope', '[]', '1', 'null']) c.send(t);
      const errs = await c.nextN(4, isError(), 5000);
      expect(errs.map((e) => e.code)).to.deep.equal([41400, 41400, 41400, 41400]);
      await c.signIn(newAccount());
    });
  });

  describe('binary frames', () => {
    it('random bytes and invalid UTF-8 in binary frames get 41400; the connection keeps working', async () => {
      const me = newAccount();
      const c = await online('bin', me);
      c.send(Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, 0xc3, 0x28]), { binary: true });
      c.send(Buffer.alloc(1000, 0), { binary: true });
      c.send(Buffer.from('not json at all'), { binary: true });
      const errs = await c.nextN(3, isError(), 5000);
      expect(errs.map((e) => e.code)).to.deep.equal([41400, 41400, 41400]);
      await connectionWorks(c, me);
    });

    it('a binary frame over 64 KiB gets 41400', async () => {
      const me = newAccount();
      const c = await online('bin-big', me);
      c.send(Buffer.alloc(80 * 1024, 0x7b), { binary: true });
      expect((await c.next(isError(), 5000)).code).to.equal(41400);
      await connectionWorks(c, me);
    });
  });

  describe('hostile nesting', () => {
    it(`msg nested ${DEEP} deep (arrays) is refused with 44744, the connection and the server keep working`, async () => {
      const me = newAccount();
      const c = await online('deep', me);
      const frame = `{"cat":"chat","act":"chat","to":"${me.address}","msg":${deepArray(DEEP)},"spam":"${c.spam}","callback":"deep"}`;
      expect(frame.length).to.be.lessThan(64 * 1024);
      c.send(frame);
      const err = await c.next(isError(), 5000);
      expect(err.code, `got ${JSON.stringify(err)}`).to.equal(44744);
      expect(await c.none(isMessage(), 200)).to.deep.equal([]);
      await connectionWorks(c, me);
      await stillServing();
    });

    it(`msg nested ${DEEP} deep (objects) in a group chat is refused with 44744`, async () => {
      const me = newAccount();
      const c = await online('deep-g', me);
      c.request({ cat: 'group', act: 'create', list: [newAccount().address], callback: 'mk' });
      const gid = (await c.next(isNotice('group', 'create'), 5000)).msg.id as string;
      const frame = `{"cat":"group","act":"chat","to":"${gid}","msg":${deepObject(DEEP)},"spam":"${c.spam}"}`;
      expect(frame.length).to.be.lessThan(64 * 1024);
      c.send(frame);
      const err = await c.next(isError(), 5000);
      expect(err.code, `got ${JSON.stringify(err)}`).to.equal(44744);
      await connectionWorks(c, me);
    });

    it('msg nested 33 deep is refused with 44744 echoing the request; 32 deep is delivered', async () => {
      const me = newAccount();
      const c = await online('depth', me);
      const tooDeep = JSON.parse(deepArray(33)) as unknown;
      const sent = c.request({ cat: 'chat', act: 'chat', to: me.address, msg: tooDeep, callback: 'd33' });
      const err = await c.next(isError(), 5000);
      expect(err.code).to.equal(44744);
      expect(err.request).to.deep.equal(sent);
      const fine = JSON.parse(deepArray(32)) as unknown;
      c.request({ cat: 'chat', act: 'chat', to: me.address, msg: fine });
      expect((await c.next(isMessage(), 5000)).msg).to.deep.equal(fine);
    });

    it(`a ${DEEP}-deep value in an ignored field before sign-in is refused with 44003`, async () => {
      const c = await connect('deep-early');
      c.send(`{"cat":"chat","act":"offline","x":${deepArray(DEEP)},"spam":"${c.spam}"}`);
      const err = await c.next(isError(), 5000);
      expect(err.code, `got ${JSON.stringify(err)}`).to.equal(44003);
      await c.signIn(newAccount());
    });

    it(`a ${DEEP}-deep value with a wrong spam is refused with 44002`, async () => {
      const c = await online('deep-spam');
      c.send(`{"cat":"chat","act":"offline","x":${deepArray(DEEP)},"spam":"wrong"}`);
      const err = await c.next(isError(), 5000);
      expect(err.code, `got ${JSON.stringify(err)}`).to.equal(44002);
    });

    describe('in an ignored field of a group request (own server: this may take it down)', () => {
      let own: ServerHandle;
      beforeEach(async () => { own = await startServer(['--workers', '2']); });
      afterEach(async () => { await own?.stop(); });

      it(`a ${DEEP}-deep extra field on a group detail is answered and the server keeps serving`, async () => {
        const me = newAccount();
        const c = await online('deep-extra', me, own);
        c.request({ cat: 'group', act: 'create', list: [newAccount().address], callback: 'mk' });
        const gid = (await c.next(isNotice('group', 'create'), 5000)).msg.id as string;
        c.send(`{"cat":"group","act":"detail","id":"${gid}","x":${deepArray(DEEP)},"spam":"${c.spam}","callback":"dx"}`);
        const answer = await c.next((f) => f.method?.callback === 'dx' || f.type === 'error', 5000, 'an answer to the detail')
          .catch((e: Error) => ({ noAnswer: e.message }));
        // If the socket dropped, give a dying server a moment to be seen dead.
        const exit = 'noAnswer' in answer ? await Promise.race([own.exited, new Promise((r) => setTimeout(() => r(null), 1000))]) : null;
        const why = own.output().split('\n').filter((l) => /Error|at /.test(l)).slice(0, 4).join(' / ');
        expect(exit, `server process exited ${JSON.stringify(exit)}: ${why}`).to.equal(null);
        expect(answer, JSON.stringify(answer)).to.not.have.property('noAnswer');
        await stillServing(own);
      });
    });
  });

  describe('huge arrays', () => {
    it('a list of 30,000 numbers is refused (44744)', async () => {
      const c = await online('nums');
      const frame = `{"cat":"group","act":"create","list":[${Array(30_000).fill('0').join(',')}],"spam":"${c.spam}","callback":"n"}`;
      expect(frame.length).to.be.lessThan(64 * 1024);
      c.send(frame);
      expect((await c.next(isError(), 5000)).code).to.equal(44744);
    });

    it('a list of 1,200 copies of one account makes a group of two', async () => {
      const me = newAccount();
      const other = newAccount();
      const c = await online('copies', me);
      c.request({ cat: 'group', act: 'create', list: Array(1200).fill(other.address), callback: 'cp' });
      const gid = (await c.next(isNotice('group', 'create'), 5000)).msg.id as string;
      c.request({ cat: 'group', act: 'detail', id: gid, callback: 'det' });
      const d = await c.next(isNotice('group', 'detail'), 5000);
      expect(d.msg.group).to.deep.equal([me.address, other.address]);
    });

    it('a list of 1,200 distinct accounts makes a group all of them are told of', async () => {
      const me = newAccount();
      const c = await online('many', me);
      const listeners = newAccounts(2);
      const ls = await Promise.all(listeners.map((a, i) => online(`l${i}`, a)));
      const many = [...randomAddresses(1198), ...listeners.map((a) => a.address)];
      c.request({ cat: 'group', act: 'create', list: many, callback: 'many' });
      const gid = (await c.next(isNotice('group', 'create'), 10_000)).msg.id as string;
      for (const l of ls) expect((await l.next(isNotice('group', 'create'), 10_000)).msg).to.deep.equal({ id: gid });
      c.request({ cat: 'group', act: 'chat', to: gid, msg: 'to all 1200' });
      for (const l of ls) expect((await l.next(isMessage(), 10_000)).msg).to.equal('to all 1200');
    });

    it('members with 10,000 underscores is refused (44009)', async () => {
      const me = newAccount();
      const c = await online('under', me);
      c.request({ cat: 'group', act: 'create', list: [newAccount().address], callback: 'mk' });
      const gid = (await c.next(isNotice('group', 'create'), 5000)).msg.id as string;
      c.request({ cat: 'group', act: 'members', id: gid, members: '_'.repeat(10_000), callback: 'u' });
      expect((await c.next(isError(), 5000)).code).to.equal(44009);
    });
  });

  describe('unknown cat and act', () => {
    const cases: Frame[] = [
      { cat: 'foo', act: 'chat' },
      { cat: 'chat', act: 'bar' },
      { cat: 'group', act: 'message' },
      { cat: 'group', act: 'destroy' },
      { cat: 'vertify', act: 'done' },
      { cat: '__proto__', act: 'chat' },
      { cat: 'constructor', act: 'chat' },
      { cat: 'chat', act: 'constructor' },
      { cat: 'chat', act: 'hasOwnProperty' },
      { cat: 'chat', act: '__proto__' },
      { cat: 'group', act: 'toString' },
      { cat: 'chat', act: '' },
      { cat: 'CHAT', act: 'chat' },
      { act: 'init' },
    ];
    it('each is refused with 41400 echoing the request', async () => {
      const me = newAccount();
      const c = await online('unknown', me);
      for (const [i, r] of cases.entries()) {
        const sent = c.request({ ...r, to: me.address, msg: 'x', id: 'GDabcdefghij', callback: `u${i}` });
        const err = await c.next((f) => f.request?.callback === `u${i}` || f.method?.callback === `u${i}`, 5000, `answer to ${JSON.stringify(r)}`);
        expect(err.type, JSON.stringify(err)).to.equal('error');
        expect(err.code, JSON.stringify(r)).to.equal(41400);
        expect(err.request).to.deep.equal(sent);
      }
      expect(await c.none(isMessage(), 200)).to.deep.equal([]);
      await connectionWorks(c, me);
    });

    it('an own "__proto__" key does not confuse the server', async () => {
      const me = newAccount();
      const c = await online('proto', me);
      c.send(`{"__proto__":{"cat":"group"},"act":"chat","to":"${me.address}","msg":"proto","spam":"${c.spam}"}`);
      expect((await c.next(isMessage(), 5000)).msg).to.equal('proto');
    });
  });

  describe('wrong types in every field of every schema', () => {
    /** The schemas of the wire (src/protocol/schema.ts), with a valid value for each parameter. */
    type Kind = 'ss58' | 'ss58list' | 'underscored' | 'gid' | 'json' | 'string' | 'seq' | 'device' | 'b64list';
    const schemas: Record<string, Record<string, Record<string, Kind>>> = {
      chat: {
        active: { acc: 'ss58' },
        chat: { to: 'ss58', msg: 'json' },
        to: { to: 'ss58', msg: 'json' },
        ack: { seq: 'seq' },
      },
      group: {
        create: { list: 'ss58list' },
        detail: { id: 'gid' },
        join: { id: 'gid', account: 'ss58' },
        members: { id: 'gid', members: 'underscored' },
        leave: { id: 'gid', account: 'ss58' },
        divert: { id: 'gid', manager: 'ss58' },
        deport: { id: 'gid', account: 'ss58' },
        recover: { id: 'gid', account: 'ss58' },
        destory: { id: 'gid' },
        chat: { to: 'gid', msg: 'json' },
        notice: { to: 'gid', msg: 'json' },
        update: { id: 'gid', key: 'string', val: 'json' },
      },
      vertify: { reg: { account: 'ss58' } },
      keys: {
        publish: { device: 'device', packages: 'b64list' },
        claim: { accounts: 'ss58list' },
        remove: { device: 'device' },
      },
    };
    const b64 = (v: unknown): boolean => typeof v === 'string' && v.length >= 1 && v.length <= 2048 && /^[A-Za-z0-9+/]+={0,2}$/.test(v);
    /** The code a wrong value of each kind must get (undefined: any value is acceptable). */
    const codeFor = (kind: Kind, v: unknown): number | undefined => {
      switch (kind) {
        case 'ss58': return 44009;
        case 'gid': return 44100;
        // A non-empty array of non-accounts is a list of invalid accounts; anything else is not a list.
        case 'ss58list': return Array.isArray(v) && v.length > 0 ? 44009 : 44744;
        // Any string splits into accounts, invalid ones here; a non-string is not a list.
        case 'underscored': return typeof v === 'string' ? 44009 : 44744;
        case 'string': return typeof v === 'string' && v.length <= 4096 ? undefined : 44744;
        case 'seq': return Number.isSafeInteger(v) && (v as number) >= 0 ? undefined : 44744;
        case 'json': return undefined;
        // A device id is 64 lowercase hex characters; packages 0 to 16 base64 strings.
        case 'device': return 44744;
        case 'b64list': return Array.isArray(v) && v.length <= 16 && v.every(b64) ? undefined : 44744;
      }
    };
    const wrongValues: unknown[] = [12345, -1, 1.5, true, false, {}, { a: 'b' }, [], ['x'], '', 'x'.repeat(5000)];

    it('every wrong value of every typed parameter gets its error code; nothing crashes', async function () {
      this.timeout(30_000);
      const me = newAccount();
      const other = newAccount();
      const c = await online('types', me);
      c.request({ cat: 'group', act: 'create', list: [other.address], callback: 'mk' });
      const gid = (await c.next(isNotice('group', 'create'), 5000)).msg.id as string;
      const valid: Record<Kind, unknown> = {
        ss58: other.address, ss58list: [other.address], underscored: `${me.address}_${other.address}`,
        gid, json: 'ok', string: 'nick', seq: 0, device: 'ab'.repeat(32), b64list: ['AAAA'],
      };
      const failures: string[] = [];
      let n = 0;
      for (const [cat, acts] of Object.entries(schemas)) {
        for (const [act, params] of Object.entries(acts)) {
          for (const [name, kind] of Object.entries(params)) {
            for (const v of wrongValues) {
              const expected = codeFor(kind, v);
              if (expected === undefined) continue;
              const req: Frame = { cat, act, callback: `t${n++}` };
              for (const [p, k] of Object.entries(params)) req[p] = valid[k];
              if (act === 'update') req.key = 'nick';
              req[name] = v;
              const sent = c.request(req);
              const f = await c.next((x) => x.request?.callback === req.callback || x.method?.callback === req.callback, 5000, `answer to ${cat}.${act} ${name}=${JSON.stringify(v).slice(0, 30)}`);
              const code: number | undefined = f.type === 'error' ? f.code : undefined;
              if (code !== expected) failures.push(`${cat}.${act} ${name}=${JSON.stringify(v).slice(0, 30)}: expected ${expected}, got ${JSON.stringify(f).slice(0, 200)}`);
              else expect(f.request).to.deep.equal(sent);
            }
          }
        }
      }
      expect(failures, failures.join('\n')).to.deep.equal([]);
      await connectionWorks(c, me);
      await stillServing();
    });

    it('null or absent required parameters get 44001', async () => {
      const me = newAccount();
      const c = await online('missing', me);
      const failures: string[] = [];
      let n = 0;
      for (const [cat, acts] of Object.entries(schemas)) {
        for (const [act, params] of Object.entries(acts)) {
          for (const name of Object.keys(params)) {
            for (const absent of [null, undefined]) {
              const req: Frame = { cat, act, callback: `m${n++}` };
              for (const p of Object.keys(params)) if (p !== name) req[p] = 'placeholder';
              if (absent === null) req[name] = null;
              c.request(req);
              const f = await c.next((x) => x.request?.callback === req.callback || x.method?.callback === req.callback, 5000);
              // Parameters are checked in schema order: an earlier placeholder may fail first.
              const first = Object.keys(params)[0];
              if (name === first && (f.type !== 'error' || f.code !== 44001)) failures.push(`${cat}.${act} ${name}=${String(absent)}: ${JSON.stringify(f).slice(0, 200)}`);
              if (f.type !== 'error' || !KNOWN_CODES.includes(f.code)) failures.push(`${cat}.${act} ${name}=${String(absent)}: no coded error: ${JSON.stringify(f).slice(0, 200)}`);
            }
          }
        }
      }
      expect(failures, failures.join('\n')).to.deep.equal([]);
    });

    it('wrong types of cat, act, spam and callback get 41400, 41400, 44002 and 44744', async () => {
      const me = newAccount();
      const c = await online('envelope', me);
      const base = { cat: 'chat', act: 'chat', to: me.address, msg: 'x' };
      const bad: Array<[Frame, number]> = [];
      for (const v of [1, {}, [], true, null]) {
        bad.push([{ ...base, cat: v }, 41400]);
        bad.push([{ ...base, act: v }, 41400]);
        bad.push([{ ...base, spam: v }, 44002]);
        if (v !== null) bad.push([{ ...base, callback: v }, 44744]);
      }
      bad.push([{ ...base, callback: 'c'.repeat(300) }, 44744]);
      const { act: _drop, ...noAct } = base;
      bad.push([noAct, 41400]);
      for (const [req, code] of bad) {
        const sent = c.request(req);
        const err = await c.next(isError(), 5000, `error for ${JSON.stringify(req).slice(0, 80)}`);
        expect(err.code, JSON.stringify(req).slice(0, 100)).to.equal(code);
        expect(err.request).to.deep.equal(sent);
      }
      expect(await c.none(isMessage(), 200), 'a refused message was delivered').to.deep.equal([]);
      await connectionWorks(c, me);
    });

    it('msg of every JSON type is acceptable and delivered as is (json parameters take any value; an empty msg "" is missing: 44001)', async () => {
      const me = newAccount();
      const c = await online('json', me);
      const values = wrongValues.filter((v) => v !== '');
      for (const v of values) c.request({ cat: 'chat', act: 'chat', to: me.address, msg: v });
      const got = await c.nextN(values.length, isMessage(), 5000);
      expect(got.map((f) => f.msg)).to.deep.equal(values);
    });
  });

  describe('after all of it', () => {
    it('the server is still up and a second client can sign in and chat', async () => {
      expect(ctx.srv.proc.exitCode).to.equal(null);
      await stillServing();
    });
  });
});
