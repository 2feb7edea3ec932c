/**
 * The account filter (src/account-filter.ts): a node's signed-in accounts, counted per bit, against
 * the filter an entry carries; and its header form.
 */
import { expect } from 'chai';
import { accountBit, AccountFilter, bitsFromHex, bitsToHex, emptyBits, setAccount } from '../src/account-filter';

const bitsOf = (...accounts: string[]): Uint32Array => {
  const b = emptyBits();
  for (const a of accounts) setAccount(b, a);
  return b;
};

/** Two different accounts on the same bit. */
function collision(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const a = `5Acc${i}`;
    const b = accountBit(a);
    const other = seen.get(b);
    if (other !== undefined) return [other, a];
    seen.set(b, a);
  }
}

describe('account filter', () => {
  it('an empty filter holds no account; one signed in is held, and gone once it leaves', () => {
    const f = new AccountFilter();
    expect(f.mayHoldAny(bitsOf('5Alice', '5Bob'))).to.equal(false);
    f.add('5Alice');
    expect(f.mayHoldAny(bitsOf('5Bob', '5Alice'))).to.equal(true);
    expect(f.mayHoldAny(emptyBits())).to.equal(false);
    f.remove('5Alice');
    expect(f.mayHoldAny(bitsOf('5Alice'))).to.equal(false);
  });

  it('counts per bit: of two accounts on one bit, the bit stays while either is signed in', () => {
    const [a, b] = collision();
    expect(accountBit(a)).to.equal(accountBit(b));
    const f = new AccountFilter();
    f.add(a);
    f.add(b);
    f.remove(a);
    expect(f.mayHoldAny(bitsOf(b)), 'b is still here').to.equal(true);
    f.remove(b);
    expect(f.mayHoldAny(bitsOf(b))).to.equal(false);
    f.remove(b); // one removal too many does not wrap the count
    f.add(a);
    expect(f.mayHoldAny(bitsOf(a))).to.equal(true);
  });

  it('hex: 128 digits there and back; anything else is refused', () => {
    const b = bitsOf('5Alice', '5Bob', '5Carol');
    const hex = bitsToHex(b);
    expect(hex).to.have.length(128);
    expect([...bitsFromHex(hex)!]).to.deep.equal([...b]);
    expect(bitsFromHex(hex.slice(1))).to.equal(undefined);
    expect(bitsFromHex(`${hex.slice(0, 127)}g`)).to.equal(undefined);
  });
});
