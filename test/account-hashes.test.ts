/**
 * Accounts by hash (src/account-hashes.ts): a node's signed-in accounts, counted, against the
 * hashes an entry lists; and their header form.
 */
import { expect } from 'chai';
import { accountHash, AccountSet, hashesFromText, hashesToText, MAX_LISTED } from '../src/account-hashes';

const listed = (...accounts: string[]): Int32Array => Int32Array.from(accounts.map(accountHash));

describe('account hashes', () => {
  it('an empty set holds no account, not even `any`; one signed in is held, and gone once it leaves', () => {
    const s = new AccountSet();
    expect(s.holdsAny(listed('5Alice', '5Bob'))).to.equal(false);
    expect(s.holdsAny('any')).to.equal(false);
    s.add('5Alice');
    expect(s.holdsAny(listed('5Bob', '5Alice'))).to.equal(true);
    expect(s.holdsAny(listed('5Bob'))).to.equal(false);
    expect(s.holdsAny('any')).to.equal(true);
    expect(s.holdsAny(new Int32Array(0))).to.equal(false);
    s.remove('5Alice');
    expect(s.holdsAny(listed('5Alice'))).to.equal(false);
  });

  it('counts: an account added twice (two sockets\' worth of sign-ins) stays until removed twice; one removal too many is ignored', () => {
    const s = new AccountSet();
    s.add('5Alice');
    s.add('5Alice');
    s.remove('5Alice');
    expect(s.holdsAny(listed('5Alice'))).to.equal(true);
    s.remove('5Alice');
    s.remove('5Alice');
    expect(s.holdsAny(listed('5Alice'))).to.equal(false);
    s.add('5Alice');
    expect(s.holdsAny(listed('5Alice'))).to.equal(true);
  });

  it('as text: there and back, `*` for any; malformed text or too many hashes are refused', () => {
    const h = listed('5Alice', '5Bob', '5Carol');
    expect([...(hashesFromText(hashesToText(h)) as Int32Array)]).to.deep.equal([...h]);
    expect(hashesToText(new Int32Array(0))).to.equal('');
    expect([...(hashesFromText('') as Int32Array)]).to.deep.equal([]);
    expect(hashesFromText(hashesToText('any'))).to.equal('any');
    expect(hashesFromText('abc')).to.equal(undefined);
    expect(hashesFromText('ab;c')).to.equal(undefined);
    expect(hashesFromText(Buffer.alloc(6).toString('base64'))).to.equal(undefined);
    expect(hashesFromText(hashesToText(new Int32Array(MAX_LISTED + 1)))).to.equal(undefined);
  });
});
