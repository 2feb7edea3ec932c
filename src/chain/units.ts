/**
 * Token amounts: integers of the chain's base unit (u128) written as decimal units with the chain's
 * decimals, by string arithmetic only. The first service compared float strings; this never touches
 * a float, so 0.1 + 0.2 and amounts above 2^53 stay exact.
 */

const BASE_UNITS = /^(0|[1-9][0-9]*)$/;
const DECIMAL = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/;

function checkDecimals(decimals: number): void {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 64) throw new RangeError(`invalid decimals ${decimals}`);
}

/** Base units as a bigint; accepts a bigint or a canonical decimal string of a non-negative integer. */
export function toBaseUnits(v: bigint | string): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n) throw new RangeError('amount must be non-negative');
    return v;
  }
  if (!BASE_UNITS.test(v)) throw new RangeError(`not a base-unit integer: "${v}"`);
  return BigInt(v);
}

/** 1234500000000n with 12 decimals → "1.2345"; no trailing zeros, no exponent, "0" for zero. */
export function formatUnits(amount: bigint | string, decimals: number): string {
  checkDecimals(decimals);
  const digits = toBaseUnits(amount).toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  const frac = digits.slice(digits.length - decimals).replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : whole;
}

/** "1.2345" with 12 decimals → 1234500000000n; refuses more fractional digits than the chain has. */
export function parseUnits(text: string, decimals: number): bigint {
  checkDecimals(decimals);
  if (!DECIMAL.test(text)) throw new RangeError(`not a decimal amount: "${text}"`);
  const [whole, frac = ''] = text.split('.') as [string, string?];
  const f = frac.replace(/0+$/, '');
  if (f.length > decimals) throw new RangeError(`"${text}" has more than ${decimals} decimals`);
  return BigInt(whole + f.padEnd(decimals, '0'));
}
