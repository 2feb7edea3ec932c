/**
 * What the engine's parts share: the client they work for, the options, and this device (its
 * ciphersuite, keys, groups and kept texts), made once when the engine starts.
 */
import type { ImgcError } from '../errors.js';
import type { Requester } from '../requests.js';
import type { AccountSign, VouchVerifier } from './device.js';
import type { GroupStates } from './group-states.js';
import type { Keyring } from './keyring.js';
import type { CiphersuiteImpl, ClientConfig } from './mls.js';
import type { Plaintexts } from './plaintexts.js';
import type { E2EStorage } from './storage.js';

export interface E2EOptions {
  /** Where the device keeps its keys and groups (default: memory, for the client's life). */
  storage?: E2EStorage;
  /** Checks an account's signature (the vouch of a device key). */
  verify: VouchVerifier;
  /**
   * How long a conversation's devices are taken as unchanged before a send asks the directory
   * again (ms, default 60,000): a new or removed device of a member is seen within it.
   */
  devicesTtlMs?: number;
  /** Texts of read and sent messages kept to read history again (default 5,000; a browser's quota may want fewer). */
  keptTexts?: number;
}

/** What the engine needs of the client. */
export interface E2EHost extends Requester {
  /** The account's signature of a text (vouches this device). */
  sign: AccountSign;
  /** The accounts of a group now (the server's record). */
  groupMembers(id: string): Promise<string[]>;
  /** A failure nothing waits for (the client's `error` event). */
  warn?(e: ImgcError): void;
}

/** This device, as the sending and the reading side use it. */
export interface DeviceContext {
  readonly host: E2EHost;
  readonly opts: E2EOptions;
  readonly cs: CiphersuiteImpl;
  readonly keys: Keyring;
  /** The library's settings with our check of credentials (one, so its verdicts are remembered). */
  readonly config: ClientConfig;
  readonly storage: E2EStorage;
  readonly groups: GroupStates;
  readonly texts: Plaintexts;
}
