/**
 * Entry point: `npm start -- [flags]`. Reads the settings, starts the node, and shuts it down
 * cleanly on SIGTERM or SIGINT. Every fatal path ends in one structured pino line at `fatal`: a bad
 * setting or an unusable machine (exit 2), a throw or rejection nobody handled (exit 1).
 */
import { ConfigError, loadSettings, usage } from './config';
import { logger, setLogLevel } from './log';
import { flushAggregated } from './log-aggregate';
import { Node, StartupError } from './supervisor/node';
import { openCarrier } from './supervisor/open-carrier';
import { startStatusServer, type StatusServer } from './status/server';
import { resolveStatusToken } from './status/token';

/** The graceful stop once the node runs; before that a fault simply exits. */
let shutdown: ((code: number) => Promise<void>) | undefined;
let faulted = false;

/**
 * A throw or rejection that reached the top: one fatal line (the error with its stack as a field),
 * then a graceful stop with exit 1 (its own deadline bounds it). A second fault while stopping is
 * logged at error, so the fatal line stays the only one.
 */
function fault(kind: string, err: unknown): void {
  const log = logger();
  if (faulted) {
    log.error({ err, kind }, 'another fault while stopping');
    return;
  }
  faulted = true;
  flushAggregated();
  log.fatal({ err, kind }, `${kind}: shutting down`);
  if (shutdown) void shutdown(1).catch(() => process.exit(1));
  else process.exit(1);
}
process.on('uncaughtException', (err) => fault('uncaught exception', err));
process.on('unhandledRejection', (reason) => fault('unhandled rejection', reason));

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`usage: npm start -- [flags]\n${usage()}\n`);
    return;
  }
  let settings;
  try {
    settings = loadSettings(argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    logger().fatal(`bad setting: ${err.message}`);
    process.exitCode = 2;
    return;
  }
  setLogLevel(settings.logLevel);
  const log = logger();
  if (settings.checkConfig) {
    const { checkConfig: _, ...effective } = settings;
    const statusToken = effective.statusToken === undefined ? '(generated into <data>/status-token)' : effective.statusToken === 'none' ? 'none' : '(set)';
    // The answer is the point of --check-config: it is printed whatever the log level.
    log.child({}, { level: 'info' }).info({ settings: { ...effective, statusToken } }, 'settings are valid');
    return;
  }
  const node = new Node(settings, openCarrier);
  let status: StatusServer | undefined;
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const deadline = setTimeout(() => { log.error('shutdown deadline passed'); process.exit(1); }, settings.shutdownMs);
    deadline.unref();
    await node.stop();
    await status?.close();
    flushAggregated();
    log.info('stopped');
    process.exit(code);
  };
  shutdown = stop;
  node.onFatal = () => void stop(1);
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  if (settings.testFaults) {
    // Test-only fault switch: each SIGUSR2 crashes the next shard in the middle of its work.
    let next = 0;
    process.on('SIGUSR2', () => node.crashShard(next++ % settings.workers));
    // SIGHUP throws on the main thread outside any handler: the path of a fault nobody expected.
    process.on('SIGHUP', () => setImmediate(() => { throw new Error('test fault: thrown on the main thread (SIGHUP)'); }));
  }
  // The status server first: a port in use stops start-up before anything else is opened.
  if (settings.statusPort !== 0) {
    let token: string | undefined;
    try {
      token = resolveStatusToken(settings.statusToken, settings.data, log.child({ part: 'status' })).token;
    } catch (err) {
      throw new StartupError(`status token in ${settings.data} is not usable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      status = await startStatusServer(node.status, { host: settings.statusHost, port: settings.statusPort, token });
    } catch (err) {
      throw StartupError.fromListen(err, 'status-port', settings.statusHost, settings.statusPort);
    }
  }
  await node.start();
}

main().catch((err: unknown) => {
  // A setting the machine cannot honour (a port in use, an unusable data directory) is the operator's
  // to fix: one clear line and exit 2, as for a bad setting; anything else is a fault (exit 1).
  if (err instanceof StartupError) {
    logger().fatal(`cannot start: ${err.message}`);
    process.exit(2);
  }
  logger().fatal({ err }, 'start-up failed');
  process.exit(1);
});
