/**
 * Entry point: `npm start -- [flags]`. Reads the settings, starts the node, and shuts it down
 * cleanly on SIGTERM or SIGINT.
 */
import { ConfigError, loadSettings, usage } from './config';
import { logger, setLogLevel } from './log';
import { Node, StartupError } from './supervisor/node';
import { startStatusServer, type StatusServer } from './status/server';

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
    // The answer is the point of --check-config: it is printed whatever the log level.
    log.child({}, { level: 'info' }).info({ settings: { ...effective, statusToken: effective.statusToken ? '(set)' : undefined } }, 'settings are valid');
    return;
  }
  const node = new Node(settings);
  let status: StatusServer | undefined;
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const deadline = setTimeout(() => { log.error('shutdown deadline passed'); process.exit(1); }, settings.shutdownMs);
    deadline.unref();
    await node.stop();
    await status?.close();
    log.info('stopped');
    process.exit(code);
  };
  node.onFatal = () => void stop(1);
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  if (settings.testFaults) {
    // Test-only fault switch: each SIGUSR2 crashes the next shard in the middle of its work.
    let next = 0;
    process.on('SIGUSR2', () => node.crashShard(next++ % settings.workers));
  }
  // The status server first: a port in use stops start-up before anything else is opened.
  if (settings.statusPort !== 0) {
    try {
      status = await startStatusServer(node, { host: settings.statusHost, port: settings.statusPort, token: settings.statusToken });
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
