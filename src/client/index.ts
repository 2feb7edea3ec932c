/**
 * `imgc/client` for Node: the SDK with `ws` as its WebSocket (browsers: `imgc/client/browser`, or
 * core.js with the native WebSocket). See docs/client.md.
 */
import WebSocket from 'ws';
import { ImgcClient as Core, type ClientOptions, type WebSocketCtor } from './core.js';

export * from './core.js';
export * from './errors.js';
export * from './signer.js';
export * from './types.js';

/** The client with `ws` as the default WebSocket constructor. */
export class ImgcClient extends Core {
  constructor(opts: ClientOptions) {
    super({ WebSocket: WebSocket as unknown as WebSocketCtor, ...opts });
  }
}

/** Creates a client and connects it (resolves once signed in). */
export async function connect(opts: ClientOptions): Promise<ImgcClient> {
  const c = new ImgcClient(opts);
  await c.connect();
  return c;
}
