/**
 * The one file that speaks to ts-mls (RFC 9420): the ciphersuite, the wire encodings of MLS
 * messages, and the two reads of a group the library does not offer as we need them (its members
 * by leaf, and the sender of an application message). Everything else in e2e/ works through here,
 * so a change of library version touches one file.
 *
 * Ciphersuite 1, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519: the suite every MLS implementation
 * must support, and one that Node's and browsers' WebCrypto run without extra packages.
 */
import {
  createApplicationMessage, createCommit, createGroup, decodeGroupState, decodeMlsMessage, defaultCapabilities,
  defaultLifetime, emptyPskIndex, encodeGroupState, encodeMlsMessage, generateKeyPackageWithKey,
  getCiphersuiteFromName, getCiphersuiteImpl, joinGroup, processPrivateMessage,
  type AuthenticationService, type CiphersuiteImpl, type ClientConfig, type ClientState, type Credential, type KeyPackage,
  type LeafNode, type MLSMessage, type PrivateKeyPackage, type PrivateMessage, type Proposal, type Welcome,
} from 'ts-mls';
import { defaultClientConfig } from 'ts-mls/clientConfig.js';
import { unprotectPrivateMessage } from 'ts-mls/messageProtection.js';

export type { ClientConfig, ClientState, Credential, KeyPackage, PrivateKeyPackage, PrivateMessage, Proposal, Welcome, CiphersuiteImpl };
export { createApplicationMessage, createCommit, createGroup, emptyPskIndex, generateKeyPackageWithKey, joinGroup, processPrivateMessage };

export const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const;

let impl: Promise<CiphersuiteImpl> | undefined;
/** The ciphersuite's implementation (made once). */
export function suite(): Promise<CiphersuiteImpl> {
  impl ??= getCiphersuiteImpl(getCiphersuiteFromName(SUITE));
  return impl;
}

export const capabilities = defaultCapabilities;
export const lifetime = defaultLifetime;

/** The library's defaults with our check of every credential a group or key package brings. */
export function clientConfig(auth: AuthenticationService): ClientConfig {
  return { ...defaultClientConfig, authService: auth };
}

// ---- bytes ----

export function b64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
/** Standard base64 to bytes; undefined for anything else. */
export function unb64(s: unknown): Uint8Array | undefined {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  try { return Uint8Array.from(atob(s), (c) => c.charCodeAt(0)); } catch { return undefined; }
}
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join('');
}
export function unhex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
}
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const fromUtf8 = (b: Uint8Array): string => new TextDecoder('utf-8', { fatal: true }).decode(b);

// ---- messages ----

function encodeMessage(m: MLSMessage): string { return b64(encodeMlsMessage(m)); }
function decodeMessage(s: unknown): MLSMessage | undefined {
  const bytes = unb64(s);
  if (bytes === undefined) return undefined;
  try { return decodeMlsMessage(bytes, 0)?.[0]; } catch { return undefined; }
}

export const encodeKeyPackage = (kp: KeyPackage): string => encodeMessage({ keyPackage: kp, wireformat: 'mls_key_package', version: 'mls10' });
export const encodeWelcome = (w: Welcome): string => encodeMessage({ welcome: w, wireformat: 'mls_welcome', version: 'mls10' });
export const encodePrivate = (pm: PrivateMessage): string => encodeMessage({ privateMessage: pm, wireformat: 'mls_private_message', version: 'mls10' });
export const encodeAny = encodeMessage;

export function decodeKeyPackage(s: unknown): KeyPackage | undefined {
  const m = decodeMessage(s);
  return m?.wireformat === 'mls_key_package' ? m.keyPackage : undefined;
}
export function decodeWelcome(s: unknown): Welcome | undefined {
  const m = decodeMessage(s);
  return m?.wireformat === 'mls_welcome' ? m.welcome : undefined;
}
export function decodePrivate(s: unknown): PrivateMessage | undefined {
  const m = decodeMessage(s);
  return m?.wireformat === 'mls_private_message' ? m.privateMessage : undefined;
}

// ---- group state ----

export function saveState(s: ClientState): string { return b64(encodeGroupState(s)); }
export function loadState(s: string, config: ClientConfig): ClientState | undefined {
  const bytes = unb64(s);
  const decoded = bytes === undefined ? undefined : decodeGroupState(bytes, 0)?.[0];
  return decoded === undefined ? undefined : { ...decoded, clientConfig: config };
}

export const groupIdOf = (s: ClientState): Uint8Array => s.groupContext.groupId;
export const epochOf = (s: ClientState): bigint => s.groupContext.epoch;

/** The leaves of a group, by leaf index. */
export function leaves(s: ClientState): Array<{ index: number; leaf: LeafNode }> {
  const out: Array<{ index: number; leaf: LeafNode }> = [];
  s.ratchetTree.forEach((node, i) => {
    if (i % 2 === 0 && node?.nodeType === 'leaf') out.push({ index: i / 2, leaf: node.leaf });
  });
  return out;
}

/**
 * An application message's bytes and its sender's leaf. The library's own processing returns the
 * bytes only; the leaf is what tells us who wrote it, so the sender is read here with its own
 * unprotect, as processPrivateMessage does (this epoch, or one it keeps for late messages).
 */
export async function openApplication(s: ClientState, pm: PrivateMessage, cs: CiphersuiteImpl): Promise<{ data: Uint8Array; leaf: number; state: ClientState }> {
  const old = pm.epoch < s.groupContext.epoch ? s.historicalReceiverData.get(pm.epoch) : undefined;
  if (pm.epoch < s.groupContext.epoch && old === undefined) throw new Error('epoch no longer kept');
  const src = old ?? { senderDataSecret: s.keySchedule.senderDataSecret, secretTree: s.secretTree, ratchetTree: s.ratchetTree, groupContext: s.groupContext };
  const r = await unprotectPrivateMessage(src.senderDataSecret, pm, src.secretTree, src.ratchetTree, src.groupContext, s.clientConfig.keyRetentionConfig, cs);
  const c = r.content.content;
  if (c.contentType !== 'application' || c.sender.senderType !== 'member') throw new Error('not an application message of a member');
  const state: ClientState = old === undefined
    ? { ...s, secretTree: r.tree }
    : { ...s, historicalReceiverData: new Map(s.historicalReceiverData).set(pm.epoch, { ...old, secretTree: r.tree }) };
  return { data: c.applicationData, leaf: c.sender.leafIndex, state };
}

export { makeKeyPackageRef } from 'ts-mls/keyPackage.js';
