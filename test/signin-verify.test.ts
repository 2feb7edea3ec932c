/**
 * The sign-in verifiers: the WebAssembly and the pure-JS implementations agree on valid and invalid
 * signatures of every scheme (sr25519, ed25519, ecdsa; bare, with a multi-signature type prefix, of
 * the `<Bytes>`-wrapped spam), the scheme is read off the signature, and the pool task answers with WASM.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { stringToU8a, u8aConcat, u8aToHex, u8aWrapBytes } from '@polkadot/util';
import { signatureVerify } from '@polkadot/util-crypto';
import { candidates, initWasm, verify, verifyScheme, type Impl } from '../src/net/verify-core';
import type { SignatureAnswer } from '../src/net/signature-task';
import { accountsReady, newAccount, type Account, type KeyType } from './support/accounts';

const TYPES: KeyType[] = ['sr25519', 'ed25519', 'ecdsa'];
const PREFIX: Record<KeyType, number> = { ed25519: 0, sr25519: 1, ecdsa: 2 };
const IMPLS: Impl[] = ['wasm', 'js'];

function sign(a: Account, message: string, opts: { wrap?: boolean; prefix?: boolean } = {}): string {
  const bytes = opts.wrap ? u8aWrapBytes(stringToU8a(message)) : stringToU8a(message);
  const sig = a.pair.sign(bytes);
  return u8aToHex(opts.prefix ? u8aConcat(new Uint8Array([PREFIX[a.type]]), sig) : sig);
}

/** The same signature with one bit of its middle flipped. */
function flip(sigHex: string): string {
  const i = 2 + Math.floor((sigHex.length - 2) / 2);
  const c = parseInt(sigHex[i]!, 16) ^ 1;
  return sigHex.slice(0, i) + c.toString(16) + sigHex.slice(i + 1);
}

describe('sign-in: WASM and pure-JS verifiers', function () {
  this.timeout(30_000);
  const accounts = new Map<KeyType, Account>();

  before(async () => {
    await accountsReady();
    expect(await initWasm(), 'the WebAssembly verifier starts').to.equal(true);
    for (const t of TYPES) accounts.set(t, newAccount(t));
  });

  for (const type of TYPES) {
    describe(type, () => {
      const msg = 'spam-0123456789abcdef';
      const cases = (): Array<[string, string, string, boolean]> => {
        const me = accounts.get(type)!;
        const other = newAccount(type);
        const good = sign(me, msg);
        return [
          ['a valid signature', good, me.address, true],
          ['a valid signature with the type prefix', sign(me, msg, { prefix: true }), me.address, true],
          ['a valid signature of the <Bytes>-wrapped spam', sign(me, msg, { wrap: true }), me.address, true],
          ['a signature with one bit flipped', flip(good), me.address, false],
          ['a signature of another message', sign(me, `${msg}x`), me.address, false],
          ['a signature by another key', sign(other, msg), me.address, false],
          ['a valid signature checked against another address', good, other.address, false],
          ['a signature cut short', good.slice(0, -2), me.address, false],
          ['zeros', `0x${'00'.repeat(type === 'ecdsa' ? 65 : 64)}`, me.address, false],
        ];
      };

      it('both implementations agree with each other and with signatureVerify, valid and invalid', () => {
        for (const [what, sig, address, valid] of cases()) {
          const reference = (() => { try { return signatureVerify(msg, sig, address).isValid; } catch { return false; } })();
          expect(reference, `signatureVerify: ${what}`).to.equal(valid);
          for (const impl of IMPLS) expect(verify(impl, msg, sig, address), `${impl}: ${what}`).to.equal(valid);
        }
      });

      it('the scheme that verifies is the key\'s own', () => {
        const me = accounts.get(type)!;
        for (const impl of IMPLS) {
          expect(verifyScheme(impl, msg, sign(me, msg), me.address), impl).to.equal(type);
          expect(verifyScheme(impl, msg, sign(me, msg, { prefix: true }), me.address), `${impl} prefixed`).to.equal(type);
        }
      });
    });
  }

  it('the scheme is read off the signature: sr25519 first for 64 bytes, the prefix decides, ecdsa for 65', () => {
    const schemes = (bytes: number[], n: number) => candidates(new Uint8Array([...bytes, ...new Array<number>(n - bytes.length).fill(7)])).map(([s, b]) => `${s}:${b.length}`);
    expect(schemes([9], 64)).to.deep.equal(['sr25519:64', 'ed25519:64']);
    expect(schemes([1], 65)).to.deep.equal(['sr25519:64', 'ecdsa:65']);
    expect(schemes([0], 65)).to.deep.equal(['ed25519:64', 'ecdsa:65']);
    expect(schemes([9], 65)).to.deep.equal(['ecdsa:65']);
    expect(schemes([2], 66)).to.deep.equal(['ecdsa:65']);
    expect(schemes([3], 66)).to.deep.equal([]);
  });

  it('malformed input is simply not valid', () => {
    const me = accounts.get('sr25519')!;
    for (const impl of IMPLS) {
      for (const sig of ['', '0x', 'zz', sign(me, 'm').replace(/^0x/, ''), `${sign(me, 'm')}0`]) expect(verify(impl, 'm', sig, me.address), `${impl} ${sig}`).to.equal(false);
      expect(verify(impl, 'm', sign(me, 'm'), 'not-an-address')).to.equal(false);
    }
  });

  it('the pool task verifies a batch with WASM, and with JS when asked', async () => {
    const pool = new Piscina({ filename: join(__dirname, '..', 'src', 'net', 'signature-task.js'), maxThreads: 1 });
    try {
      const checks = TYPES.flatMap((t) => {
        const a = accounts.get(t)!;
        return [{ message: 'p', signature: sign(a, 'p'), address: a.address }, { message: 'p', signature: sign(a, 'q'), address: a.address }];
      });
      for (const impl of IMPLS) {
        const answer = (await pool.run({ checks, impl })) as SignatureAnswer;
        expect(answer.impl).to.equal(impl);
        expect(answer.valid).to.deep.equal([true, false, true, false, true, false]);
      }
      expect(((await pool.run({ checks: checks.slice(0, 1) })) as SignatureAnswer).impl, 'the default').to.equal('wasm');
    } finally {
      await pool.destroy();
    }
  });
});
