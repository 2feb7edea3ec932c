/**
 * The setup most end-to-end suites share, as mocha hooks registered where the helper is called
 * (inside a `describe`). The returned object's fields are filled in by the `before` hook, so read
 * them inside hooks and tests, never at describe time.
 *
 *   describe('core: instant messaging', function () {
 *     const ctx = useServer(['--workers', '2']);      // before: accounts ready, server started
 *     it('…', async () => {
 *       const a = await ctx.connect('alice');          // closed after the test
 *       … ctx.srv.url …
 *     });
 *   });                                               // after: server stopped
 *
 * `useServer` is one server for the whole suite; `useServerPerTest` is for suites whose tests start
 * (and restart) their own server into `ctx.srv`, stopped after each test.
 */
import { accountsReady, type Account } from './accounts';
import { ClientPool, type Client } from './client';
import { startServer, type ServerHandle, type StartOptions } from './server';

export interface ServerSuite {
  /** The server the `before` hook started with the given flags. */
  srv: ServerHandle;
  /** Every client opened through it (or `connect`/`signedIn`) is closed after each test. */
  readonly clients: ClientPool;
  /** Opens a client to `server` (default the suite's), closed after the test. */
  connect(name?: string, server?: ServerHandle): Promise<Client>;
  /** Connects and signs in `account` (no signature: for --auth open), closed after the test. */
  signedIn(account: Account | string, name?: string, server?: ServerHandle): Promise<Client>;
}

/**
 * Registers: before: `accountsReady()`, then `startServer(args, opts)` into `srv`; afterEach: close
 * the suite's clients; after: stop the server (removing its data directory).
 */
export function useServer(args: string[] = [], opts: StartOptions = {}): ServerSuite {
  const clients = new ClientPool();
  const ctx: ServerSuite = {
    srv: undefined as unknown as ServerHandle,
    clients,
    connect: (name, server = ctx.srv) => clients.connect(server.url, name),
    signedIn: (account, name, server = ctx.srv) => clients.signedIn(server.url, account, name),
  };
  before(async () => {
    await accountsReady();
    ctx.srv = await startServer(args, opts);
  });
  afterEach(() => clients.closeAll());
  after(async () => { await (ctx.srv as ServerHandle | undefined)?.stop(); });
  return ctx;
}

export interface PerTestServer {
  /** The server a test started (set it); stopped and cleared after each test. */
  srv: ServerHandle | undefined;
}

/**
 * For suites whose tests start their own server: registers before: `accountsReady()` (unless
 * `accounts: false`); afterEach: stop `srv` if a test left one (removing data it created) and clear it.
 */
export function useServerPerTest(opts: { accounts?: boolean } = {}): PerTestServer {
  const ctx: PerTestServer = { srv: undefined };
  if (opts.accounts !== false) before(() => accountsReady());
  afterEach(async () => { if (ctx.srv) await ctx.srv.stop(); ctx.srv = undefined; });
  return ctx;
}
