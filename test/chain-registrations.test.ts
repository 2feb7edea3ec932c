import { expect } from 'chai';
import { encodeAddress, decodeAddress } from '@polkadot/util-crypto';
import { Registrations, defaultAmountRange, type RegEvent, type RegState } from '../src/chain/registrations';
import { formatUnits, parseUnits } from '../src/chain/units';

const ALICE = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const BOB = '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty';
const CHARLIE = '5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y';
const DAVE = '5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy';
const TARGET = '5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw'; // //Eve

const T0 = 1_700_000_000_000;
const at = (blockNumber: number, eventIndex = 0) => ({ blockNumber, blockHash: `0x${blockNumber.toString(16).padStart(64, '0')}`, eventIndex });

describe('chain units', () => {
  it('formats and parses base units exactly, beyond 2^53 and without float artefacts', () => {
    expect(formatUnits(1_234_500_000_000n, 12)).to.equal('1.2345');
    expect(formatUnits('1', 12)).to.equal('0.000000000001');
    expect(formatUnits(0n, 12)).to.equal('0');
    expect(formatUnits(123_456_789_012_345_678_901n, 12)).to.equal('123456789.012345678901');
    expect(parseUnits('0.3', 12)).to.equal(300_000_000_000n);
    expect(parseUnits('123456789.012345678901', 12)).to.equal(123_456_789_012_345_678_901n);
    expect(() => parseUnits('0.0000000000001', 12)).to.throw(RangeError);
    expect(() => parseUnits('1e3', 12)).to.throw(RangeError);
    expect(() => formatUnits('-1', 12)).to.throw(RangeError);
  });
});

describe('chain registrations', () => {
  const range = defaultAmountRange(12);

  it('hands out amounts in range, distinct among live entries, and the same one again on a second reg', () => {
    // A 3-amount range: distinctness is forced, not left to luck.
    const book = new Registrations({ target: TARGET, minAmount: 5n, maxAmount: 7n });
    const a = book.reg(ALICE, T0);
    const b = book.reg(BOB, T0 + 1);
    const c = book.reg(CHARLIE, T0 + 2);
    const amounts = [a, b, c].map((r) => (r.kind === 'pending' ? r.entry.amount : r.kind));
    expect([...amounts].sort()).to.deep.equal(['5', '6', '7']);
    expect(book.reg(DAVE, T0 + 3).kind).to.equal('exhausted');

    const again = book.reg(ALICE, T0 + 1000);
    expect(again).to.deep.include({ kind: 'pending', fresh: false, events: [] });
    expect(again.kind === 'pending' && again.entry.amount).to.equal(amounts[0]);
  });

  it('uses the default range of 0.001 to 1 unit with random low digits', () => {
    expect(range).to.deep.equal({ minAmount: 1_000_000_000n, maxAmount: 1_000_000_000_000n });
    const book = new Registrations({ target: TARGET, ...range });
    const seen = new Set<string>();
    for (const acc of [ALICE, BOB, CHARLIE, DAVE]) {
      const r = book.reg(acc, T0);
      if (r.kind !== 'pending') throw new Error(r.kind);
      const v = BigInt(r.entry.amount);
      expect(v >= range.minAmount && v <= range.maxAmount).to.equal(true);
      seen.add(r.entry.amount);
    }
    expect(seen.size).to.equal(4);
  });

  it('verifies the exact amount from the account to the target, then returns the stored proof', () => {
    const book = new Registrations({ target: TARGET, ...range });
    const r = book.reg(ALICE, T0);
    if (r.kind !== 'pending') throw new Error(r.kind);
    const amount = BigInt(r.entry.amount);

    // Same amount but from someone else, or to someone else: nothing.
    expect(book.match({ from: BOB, to: TARGET, amount, ...at(5) }, T0 + 10).kind).to.equal('none');
    expect(book.match({ from: ALICE, to: BOB, amount, ...at(5) }, T0 + 10).kind).to.equal('none');

    // The chain may report another SS58 prefix (here Polkadot's 0): matched by public key.
    const fromOnChain = encodeAddress(decodeAddress(ALICE), 0);
    const m = book.match({ from: fromOnChain, to: encodeAddress(decodeAddress(TARGET), 0), amount, ...at(7, 3) }, T0 + 20);
    expect(m.kind).to.equal('verified');
    const proof = { account: ALICE, amount: r.entry.amount, ...at(7, 3), at: T0 + 20 };
    expect(m).to.deep.equal({ kind: 'verified', proof, events: [{ t: 'verified', proof }] });
    expect(book.reg(ALICE, T0 + 30)).to.deep.equal({ kind: 'verified', proof, events: [] });
    // The same transfer seen again (e.g. after a restart) changes nothing.
    expect(book.match({ from: ALICE, to: TARGET, amount, ...at(7, 3) }, T0 + 40).kind).to.equal('none');
  });

  it('reports a wrong amount and still accepts the right one afterwards', () => {
    const book = new Registrations({ target: TARGET, ...range });
    const r = book.reg(BOB, T0);
    if (r.kind !== 'pending') throw new Error(r.kind);
    const wrong = BigInt(r.entry.amount) + 1n;
    expect(book.match({ from: BOB, to: TARGET, amount: wrong, ...at(3) }, T0 + 5)).to.deep.equal({
      kind: 'wrong-amount', account: BOB, expected: r.entry.amount, got: wrong.toString(), events: [],
    });
    expect(book.match({ from: BOB, to: TARGET, amount: BigInt(r.entry.amount), ...at(4) }, T0 + 6).kind).to.equal('verified');
  });

  it('never verifies an expired entry and gives a new amount after expiry', () => {
    let next = 100n;
    const book = new Registrations({ target: TARGET, minAmount: 1n, maxAmount: 1000n, ttlMs: 60_000, random: () => next++ });
    const r = book.reg(ALICE, T0);
    if (r.kind !== 'pending') throw new Error(r.kind);
    expect(r.entry).to.deep.equal({ account: ALICE, amount: '100', createdAt: T0, expiresAt: T0 + 60_000 });
    const late = book.match({ from: ALICE, to: TARGET, amount: 100n, ...at(9) }, T0 + 60_000);
    expect(late).to.deep.equal({ kind: 'none', events: [{ t: 'expired', account: ALICE }] });
    expect(book.proofOf(ALICE)).to.equal(undefined);
    const again = book.reg(ALICE, T0 + 61_000);
    expect(again.kind === 'pending' && again.fresh && again.entry.amount).to.equal('101');
  });

  it('sweeps expired entries and rebuilds identically from a snapshot plus the journal', () => {
    const book = new Registrations({ target: TARGET, ...range, ttlMs: 1000 });
    const snapshot: RegState = book.state();
    const journal: RegEvent[] = [];
    const a = book.reg(ALICE, T0);
    journal.push(...a.events);
    const b = book.reg(BOB, T0 + 500);
    journal.push(...b.events);
    if (a.kind !== 'pending') throw new Error(a.kind);
    journal.push(...book.match({ from: ALICE, to: TARGET, amount: BigInt(a.entry.amount), ...at(2) }, T0 + 600).events);
    const swept = book.sweep(T0 + 1500);
    expect(swept).to.deep.equal([{ t: 'expired', account: BOB }]);
    journal.push(...swept);

    const replayed = new Registrations({ target: TARGET, ...range, ttlMs: 1000 }, JSON.parse(JSON.stringify(snapshot)) as RegState);
    journal.forEach((e) => replayed.apply(JSON.parse(JSON.stringify(e)) as RegEvent));
    expect(replayed.state()).to.deep.equal(book.state());
    expect(Object.keys(book.state().pending)).to.deep.equal([]);
    expect(book.state().verified[ALICE]?.amount).to.equal(a.entry.amount);
  });
});
