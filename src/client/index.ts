/**
 * `imgc/client` for Node: the SDK with `ws` as its WebSocket (browsers: `imgc/client/browser`, or
 * core.js with the native WebSocket). See docs/client.md.
 */
import WebSocket from 'ws';
import { ImgcClient as Core, type ClientOptions, type WebSocketCtor } from './core.js';
import { polkadotVerify } from './e2e/polkadot-verify.js';

export * from './core.js';
export * from './errors.js';
export * from './signer.js';
export * from './types.js';

export { polkadotVerify };
export { FileStorage, writePrivate } from './e2e/file-storage.js';

/** The client with `ws` as the default WebSocket constructor, and end-to-end encryption on (with a signer). */
export class ImgcClient extends Core {
  constructor(opts: ClientOptions) {
    super({ WebSocket: WebSocket as unknown as WebSocketCtor, ...opts, e2e: opts.e2e ?? { verify: polkadotVerify } });
  }
}

/** Creates a client and connects it (resolves once signed in). */
export async function connect(opts: ClientOptions): Promise<ImgcClient> {
  const c = new ImgcClient(opts);
  await c.connect();
  return c;
}
