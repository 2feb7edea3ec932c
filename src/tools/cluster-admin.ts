/**
 * `imgc-cluster`: the operator's tool for a cluster's durable state in NATS JetStream
 * (`npm run cluster-admin -- <command> …`, or `node dist/src/tools/cluster-admin.js <command> …`):
 *
 *   backup DEST        the ledger stream, the positions and the meta bucket into the new directory DEST
 *   restore SRC        such a backup into an empty cluster (no node of it running)
 *   import DATA_DIR    a stopped embedded server's data directory into an empty cluster (no node running)
 *
 * Each takes --cluster nats://host:port and --cluster-name NAME (or IMGC_CLUSTER, IMGC_CLUSTER_NAME),
 * and, when it may create the cluster's stream and buckets (restore, import), the nodes'
 * --cluster-replicas and --cluster-heartbeat-ms. Exit codes: 0 done, 2 usage or refusal (nothing
 * written), 1 failure. See docs/operations.md.
 */
import { logger, type Logger } from '../log';
import { CLUSTER_NAME } from '../cluster/names';
import { backupCluster, restoreCluster, type ClusterTarget } from './cluster-backup';
import { importDataDir } from './cluster-import';
import { Refusal } from './ledger-writer';

const USAGE = [
  'usage: node dist/src/tools/cluster-admin.js <command> PATH --cluster nats://host:port --cluster-name NAME',
  '  backup DEST        copy the cluster (ledger stream, positions, meta) into the new directory DEST',
  '  restore SRC        publish a backup into an empty cluster (stop every node of it first)',
  '  import DATA_DIR    move a stopped embedded server\'s data directory into an empty cluster (no node running)',
  'options (also from the environment): --cluster (IMGC_CLUSTER), --cluster-name (IMGC_CLUSTER_NAME, default imgc),',
  '  --cluster-replicas (IMGC_CLUSTER_REPLICAS, default 1) and --cluster-heartbeat-ms (IMGC_CLUSTER_HEARTBEAT_MS,',
  '  default 1000): as the nodes have them, used when restore or import create the stream and buckets',
].join('\n');

const COMMANDS = ['backup', 'restore', 'import'] as const;
type Command = typeof COMMANDS[number];

interface Args { command: Command; path: string; target: ClusterTarget }

function intSetting(name: string, raw: string, min: number, max: number): number | string {
  const n = Number(raw);
  return Number.isInteger(n) && n >= min && n <= max ? n : `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(raw)}`;
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): Args | string {
  const flags: Record<string, string | undefined> = {
    cluster: env.IMGC_CLUSTER,
    'cluster-name': env.IMGC_CLUSTER_NAME,
    'cluster-replicas': env.IMGC_CLUSTER_REPLICAS,
    'cluster-heartbeat-ms': env.IMGC_CLUSTER_HEARTBEAT_MS,
  };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') return USAGE;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (!(name in flags)) return `unknown option ${a}`;
      const v = eq < 0 ? argv[++i] : a.slice(eq + 1);
      if (v === undefined || v === '') return `--${name} needs a value`;
      flags[name] = v;
    } else if (a.startsWith('-') && a !== '-') {
      return `unknown option ${a}`;
    } else {
      positional.push(a);
    }
  }
  const [command, path, ...rest] = positional;
  if (command === undefined) return 'a command is missing (backup, restore or import)';
  if (!(COMMANDS as readonly string[]).includes(command)) return `unknown command ${command} (backup, restore or import)`;
  if (path === undefined) return `${command} needs a directory`;
  if (rest.length > 0) return `unexpected argument ${rest[0]}`;
  const url = flags.cluster;
  if (url === undefined) return '--cluster (or IMGC_CLUSTER) is missing: the NATS URL of the cluster, nats://host:port';
  if (!/^(nats|tls):\/\//.test(url)) return `--cluster must be a nats:// URL, not ${JSON.stringify(url)}`;
  const name = flags['cluster-name'] ?? 'imgc';
  if (!CLUSTER_NAME.test(name)) return `--cluster-name ${JSON.stringify(name)}: use 1 to 32 letters, digits, _ or -`;
  const replicas = intSetting('--cluster-replicas', flags['cluster-replicas'] ?? '1', 1, 5);
  if (typeof replicas === 'string') return replicas;
  const heartbeatMs = intSetting('--cluster-heartbeat-ms', flags['cluster-heartbeat-ms'] ?? '1000', 100, 60_000);
  if (typeof heartbeatMs === 'string') return heartbeatMs;
  return { command: command as Command, path, target: { url, name, replicas, heartbeatMs } };
}

async function run(args: Args, log: Logger): Promise<void> {
  const { command, path, target } = args;
  const where = { cluster: target.name, nats: target.url };
  switch (command) {
    case 'backup': {
      const m = await backupCluster(target, path, log);
      log.info({ ...where, dest: path, lastSeq: m.lastSeq, messages: m.messages, positions: m.positions, epoch: m.epoch }, `cluster backup done: ${path}`);
      return;
    }
    case 'restore': {
      const r = await restoreCluster(target, path, log);
      log.info({ ...where, src: path, ...r }, 'cluster restore done: start the nodes');
      return;
    }
    case 'import': {
      const r = await importDataDir(target, path, log);
      log.info({ ...where, data: path, ...r }, 'import done: start the nodes; clients sign in with sig once (the cluster has its own resume key)');
      return;
    }
  }
}

async function main(): Promise<number> {
  const log = logger({ component: 'cluster-admin' });
  const args = parseArgs(process.argv.slice(2), process.env);
  if (typeof args === 'string') {
    if (args === USAGE) { process.stdout.write(`${USAGE}\n`); return 0; }
    log.error(`${args} (--help: usage)`);
    return 2;
  }
  try {
    await run(args, log);
    return 0;
  } catch (err) {
    if (err instanceof Refusal) {
      log.error({ command: args.command, cluster: args.target.name }, err.message);
      return 2;
    }
    log.error({ err, command: args.command, cluster: args.target.name }, `${args.command} failed`);
    return 1;
  }
}

if (require.main === module) {
  void main().then((code) => {
    // The NATS connection's timers must not keep a failed run alive.
    process.exit(code);
  });
}
