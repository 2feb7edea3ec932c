/**
 * Runs the development node standalone: `node dist/src/chain/devnode/main.js --port 9944 [--block-ms 6000]`.
 * Blocks are sealed and finalized every --block-ms (0 = only on `dev_finalizeBlock`); transfers are
 * injected with the `dev_transfer(from, to, amount)` RPC, amount as a decimal string of base units.
 */
import { logger } from '../../log';
import { DevNode } from './server';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer`);
  return v;
}

async function main(): Promise<void> {
  const log = logger({ mod: 'devnode-main' });
  const node = await DevNode.start(arg('--port', 9944));
  const blockMs = arg('--block-ms', 6000);
  const timer = blockMs > 0
    ? setInterval(() => { node.finalizeBlock().catch((e: Error) => log.error({ err: e.message }, 'block failed')); }, blockMs)
    : undefined;
  log.info({ url: node.url, blockMs }, 'devnode ready');
  const shutdown = (): void => {
    if (timer) clearInterval(timer);
    node.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((e: Error) => {
  logger().fatal({ err: e.message }, 'devnode failed to start');
  process.exit(1);
});
