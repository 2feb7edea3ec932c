import { expect } from 'chai';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyring } from '@polkadot/keyring';
import type { KeyringPair } from '@polkadot/keyring/types';
import { issueToken, loadOrCreateServerKey, verifyToken, KEY_FILE } from '../src/chain/token';

const ALICE = '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY';
const NOW = 1_700_000_000_000;
const proof = { amount: '123456789012345', blockNumber: 42, blockHash: `0x${'ab'.repeat(32)}`, eventIndex: 3 };

/** The same token with the character at `i` replaced by another of the same alphabet. */
function alter(token: string, i: number): string {
  const c = token[i]!;
  const alphabet = /[0-9a-f]/.test(c) && i > token.indexOf('.') ? '0123456789abcdef' : 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const other = alphabet[(alphabet.indexOf(c) + 1) % alphabet.length]!;
  return token.slice(0, i) + other + token.slice(i + 1);
}

describe('chain verification tokens', () => {
  let dir: string;
  let server: KeyringPair;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'imgc-token-'));
    server = await loadOrCreateServerKey(dir);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the seed in a 0600 file and returns the same address after a restart', async () => {
    const file = join(dir, KEY_FILE);
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    expect(readFileSync(file, 'utf8').trim()).to.match(/^0x[0-9a-f]{64}$/);
    const again = await loadOrCreateServerKey(dir);
    expect(again.address).to.equal(server.address);
    const other = mkdtempSync(join(tmpdir(), 'imgc-token-'));
    try {
      expect((await loadOrCreateServerKey(other)).address).not.to.equal(server.address);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('verifies offline with the server address and returns the payload', () => {
    const token = issueToken(server, { account: ALICE, proof, iat: NOW, exp: NOW + 3_600_000 });
    const r = verifyToken(token, server.address, NOW + 1000);
    expect(r).to.deep.equal({ ok: true, payload: { account: ALICE, proof, iat: NOW, exp: NOW + 3_600_000, iss: server.address } });
  });

  it('fails when any character of the payload or the signature is altered', () => {
    const token = issueToken(server, { account: ALICE, proof, iat: NOW, exp: NOW + 3_600_000 });
    for (let i = 0; i < token.length; i++) {
      if (token[i] === '.') continue;
      const r = verifyToken(alter(token, i), server.address, NOW);
      expect(r.ok, `altered at ${i}`).to.equal(false);
    }
    expect(verifyToken(token.split('.')[0]!, server.address, NOW)).to.deep.equal({ ok: false, reason: 'malformed' });
  });

  it('fails for another server address, when expired, and when issued in the future', () => {
    const token = issueToken(server, { account: ALICE, proof, iat: NOW, exp: NOW + 1000 });
    const other = new Keyring({ type: 'ed25519' }).addFromUri('//Other');
    expect(verifyToken(token, other.address, NOW)).to.deep.equal({ ok: false, reason: 'bad-signature' });
    expect(verifyToken(token, server.address, NOW + 999).ok).to.equal(true);
    expect(verifyToken(token, server.address, NOW + 1000)).to.deep.equal({ ok: false, reason: 'expired' });
    expect(verifyToken(token, server.address, NOW - 120_000)).to.deep.equal({ ok: false, reason: 'not-yet-valid' });
  });

  it('refuses to issue under another issuer name', () => {
    expect(() => issueToken(server, { account: ALICE, proof, iat: NOW, exp: NOW + 1, iss: ALICE })).to.throw();
  });
});
