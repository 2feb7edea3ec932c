/**
 * Real SS58 accounts with their keys, for tests: sr25519 (the default of Substrate wallets), ed25519
 * and ecdsa pairs from @polkadot/keyring, on the generic prefix 42. Call `await accountsReady()` once
 * (a mocha `before`) before making any account: the crypto is WebAssembly.
 *
 *   await accountsReady();
 *   const alice = devAccount('Alice');          // //Alice, 5GrwvaEF…
 *   const someone = newAccount();               // a fresh random mnemonic, sr25519
 *   const sig = signSpam(alice.pair, spam);     // what signed mode expects as `sig`
 */
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { stringToU8a, u8aToHex } from '@polkadot/util';
import { base58Decode, base58Encode, cryptoWaitReady, encodeAddress, mnemonicGenerate, randomAsU8a } from '@polkadot/util-crypto';

export type KeyType = 'sr25519' | 'ed25519' | 'ecdsa';

export interface Account {
  /** SS58 address, prefix 42. */
  address: string;
  pair: KeyringPair;
  type: KeyType;
  /** The secret URI the pair was made from (`//Alice`, or a mnemonic). */
  uri: string;
}

let ready = false;
const keyrings = new Map<KeyType, Keyring>();

/** Loads the WebAssembly crypto; idempotent. */
export async function accountsReady(): Promise<void> {
  if (ready) return;
  await cryptoWaitReady();
  ready = true;
}

function keyring(type: KeyType): Keyring {
  if (!ready) throw new Error('call `await accountsReady()` before making accounts');
  let k = keyrings.get(type);
  if (!k) { k = new Keyring({ type, ss58Format: 42 }); keyrings.set(type, k); }
  return k;
}

/** The account of a secret URI (`//Alice`, a mnemonic, a mnemonic with a derivation path). */
export function accountFromUri(uri: string, type: KeyType = 'sr25519'): Account {
  const pair = keyring(type).addFromUri(uri);
  return { address: pair.address, pair, type, uri };
}

/** A development account: `//Alice`, `//Bob`, … (the same address on every run). */
export function devAccount(name: string, type: KeyType = 'sr25519'): Account {
  return accountFromUri(`//${name}`, type);
}

/** A fresh account from a random mnemonic: no other test shares it. */
export function newAccount(type: KeyType = 'sr25519'): Account {
  return accountFromUri(mnemonicGenerate(12), type);
}

/** `n` fresh accounts. */
export function newAccounts(n: number, type: KeyType = 'sr25519'): Account[] {
  return Array.from({ length: n }, () => newAccount(type));
}

/** `n` valid SS58 addresses of random public keys, without keys (cheap: for large lists). */
export function randomAddresses(n: number): string[] {
  return Array.from({ length: n }, () => encodeAddress(randomAsU8a(32), 42));
}

/** The signature signed mode expects as `sig`: hex of the pair's signature of the spam's UTF-8 bytes. */
export function signSpam(pair: KeyringPair, spam: string): string {
  return u8aToHex(pair.sign(stringToU8a(spam)));
}

/** Invalid SS58 strings, each wrong in one way. */
export const badAddresses = {
  /** A real address with one checksum byte changed (still base58 of the right length). */
  badChecksum(address: string): string {
    const bytes = base58Decode(address);
    bytes[bytes.length - 1] ^= 0x01;
    return base58Encode(bytes);
  },
  /** A real address with its last character dropped. */
  tooShort(address: string): string { return address.slice(0, -1); },
  /** A real address with a character appended. */
  tooLong(address: string): string { return `${address}1`; },
  /** The raw public key as hex (the wire speaks SS58 only). */
  hex(account: Account): string { return u8aToHex(account.pair.publicKey); },
  /** Base58 alphabet violation: `0`, `O`, `I` and `l` are not base58. */
  notBase58(address: string): string { return `0${address.slice(1)}`; },
};
