/**
 * Settings: one table names every setting once, with its flag, environment variable, kind and default.
 * Flags win over the environment, which wins over the JSON config file. A bad setting stops start-up
 * with a message naming the setting and the reason.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve, sep } from 'node:path';
import { LOG_LEVELS } from './log';
import { isSS58 } from './protocol/ss58';

/** A cluster's name: it names its stream, buckets and subjects on NATS (cluster/names.ts). */
export const CLUSTER_NAME = /^[A-Za-z0-9_-]{1,32}$/;

export interface Settings {
  port: number;
  host: string;
  data: string;
  workers: number;
  auth: 'signed' | 'open';
  config: string | undefined;
  maxFrame: number;
  maxBuffered: number;
  heartbeatMs: number;
  store: 'lmdb' | 'memory';
  newStore: boolean;
  retainCount: number;
  retainAgeMs: number;
  groupBacklog: number;
  signinBacklogs: number;
  maxGroupSize: number;
  maxBlocked: number;
  groupsPerHour: number;
  groupsPerHourPerAddress: number;
  strangerAddsPerHour: number;
  minFreeMb: number;
  maxGroups: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  groupsResident: number;
  groupIdleMs: number;
  partitions: number;
  fsync: 'always' | 'grouped' | 'off';
  storeWriter: 'thread' | 'inline';
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  logLevel: string;
  statusPort: number;
  statusHost: string;
  statusToken: string | undefined;
  backupDir: string | undefined;
  backupsKeep: number;
  chainEndpoint: string | undefined;
  verifyTarget: string | undefined;
  verifyTtlMs: number;
  tokenTtlMs: number;
  restartMax: number;
  restartWindowMs: number;
  shutdownMs: number;
  rateLimit: number;
  resumeTtlMs: number;
  handshakeMs: number;
  signinQueue: number;
  signinThreads: number;
  importLegacy: string | undefined;
  cluster: string | undefined;
  clusterName: string;
  clusterReplicas: number;
  clusterHeartbeatMs: number;
  clusterSnapshotMs: number;
  clusterDropAfterMs: number;
  clusterSnapshotRecords: number;
  clusterSnapshotEntries: number;
  testFaults: boolean;
  checkConfig: boolean;
}

type Kind = 'int' | 'string' | 'bool' | readonly string[];
interface Spec { flag: string; kind: Kind; def: unknown; min?: number; max?: number; help: string }

const specs: { [K in keyof Settings]: Spec } = {
  port: { flag: 'port', kind: 'int', def: 7788, min: 0, max: 65535, help: 'WebSocket port' },
  host: { flag: 'host', kind: 'string', def: '0.0.0.0', help: 'address the WebSocket endpoint binds' },
  data: { flag: 'data', kind: 'string', def: './backup', help: 'data directory: the store (conversation logs, positions, actor state) and the server key' },
  workers: { flag: 'workers', kind: 'int', def: Math.max(1, Math.min(4, availableParallelism())), min: 1, max: 64, help: 'worker threads hosting the group actors and the verification actor' },
  auth: { flag: 'auth', kind: ['signed', 'open'], def: 'signed', help: 'signed: `active` needs a signature of the spam; open: as the first service' },
  config: { flag: 'config', kind: 'string', def: undefined, help: 'JSON config file' },
  maxFrame: { flag: 'max-frame', kind: 'int', def: 64 * 1024, min: 1024, max: 16 * 1024 * 1024, help: 'largest accepted frame in bytes' },
  maxBuffered: { flag: 'max-buffered', kind: 'int', def: 8 * 1024 * 1024, min: 64 * 1024, max: 1024 * 1024 * 1024, help: 'bytes a socket may have waiting to be sent; a client that does not read past this is dropped' },
  heartbeatMs: { flag: 'heartbeat-ms', kind: 'int', def: 30_000, min: 100, max: 600_000, help: 'ping interval; a socket that misses one pong is dropped' },
  store: { flag: 'store', kind: ['lmdb', 'memory'], def: 'lmdb', help: 'lmdb: conversation logs in <data>/store (the default); memory: nothing kept across a restart (tests)' },
  newStore: { flag: 'new-store', kind: 'bool', def: false, help: 'begin a new, empty store in a data directory that holds the service\'s keys but no store (without it such a directory refuses to start: restore the store from a backup instead)' },
  retainCount: { flag: 'retain-count', kind: 'int', def: 10_000, min: 1, max: 100_000_000, help: 'messages kept per conversation (older ones are trimmed, logged and counted)' },
  retainAgeMs: { flag: 'retain-age-ms', kind: 'int', def: 90 * 24 * 3600_000, min: 1000, max: 100 * 365 * 24 * 3600_000, help: 'oldest message kept in a conversation' },
  groupBacklog: { flag: 'group-backlog', kind: 'int', def: 200, min: 1, max: 100_000, help: 'newest messages of a group delivered at sign-in; older ones are announced with a limited notice and read with history' },
  signinBacklogs: { flag: 'signin-backlogs', kind: 'int', def: 64, min: 0, max: 1_000_000, help: 'sign-in backlogs read at once (each buffers up to about 1,024 records); the rest wait their turn in order; 0: no bound' },
  maxGroupSize: { flag: 'max-group-size', kind: 'int', def: 5000, min: 2, max: 100_000, help: 'most members of a group' },
  maxBlocked: { flag: 'max-blocked', kind: 'int', def: 1000, min: 0, max: 100_000, help: 'most accounts on the block list of a group (deport past it is refused with 44744)' },
  groupsPerHour: { flag: 'groups-per-hour', kind: 'int', def: 100, min: 1, max: 1_000_000, help: 'groups one account may create per hour (past it: 44029 with retryAfterMs)' },
  groupsPerHourPerAddress: { flag: 'groups-per-hour-per-address', kind: 'int', def: 500, min: 1, max: 10_000_000, help: 'groups created per hour from one remote address, whatever the accounts (behind a proxy: the proxy\'s; past it: 44029 with retryAfterMs)' },
  strangerAddsPerHour: { flag: 'stranger-adds-per-hour', kind: 'int', def: 20, min: 0, max: 1_000_000, help: 'groups an account may be added to per hour by accounts it never wrote to (past it the account is left out and the adder told: `skipped`, or 44029 for a join)' },
  minFreeMb: { flag: 'min-free-mb', kind: 'int', def: 512, min: 0, max: 1_000_000_000, help: 'free disk space (MB) of the data directory under which new groups and new conversations are refused with 45007 (0: off)' },
  maxGroups: { flag: 'max-groups', kind: 'int', def: 1_000_000, min: 1, max: 1_000_000_000, help: 'groups the server holds in total (a create past it: 44029)' },
  maxConnections: { flag: 'max-connections', kind: 'int', def: 15_000, min: 1, max: 10_000_000, help: 'open WebSocket connections in total; past it the upgrade is answered HTTP 503 (keep it below the open-file limit)' },
  maxConnectionsPerIp: { flag: 'max-connections-per-ip', kind: 'int', def: 1000, min: 1, max: 10_000_000, help: 'open WebSocket connections per remote address (behind a proxy: the proxy\'s); past it HTTP 503' },
  groupsResident: { flag: 'groups-resident', kind: 'int', def: 200_000, min: 1, max: 100_000_000, help: 'most group actors kept in memory per worker thread' },
  groupIdleMs: { flag: 'group-idle-ms', kind: 'int', def: 600_000, min: 100, max: 86_400_000, help: 'a group quiet this long leaves memory (its state is in the store)' },
  partitions: { flag: 'partitions', kind: 'int', def: 16, min: 1, max: 1024, help: 'placement partitions: a group hashes to one, a partition to a worker thread' },
  fsync: { flag: 'fsync', kind: ['always', 'grouped', 'off'], def: 'grouped', help: 'store fsync policy: always and grouped wait for the disk before an acknowledgement leaves; off leaves it to the kernel' },
  storeWriter: { flag: 'store-writer', kind: ['thread', 'inline'], def: 'thread', help: 'where the LMDB store commits: its writer thread (the socket thread only encodes), or inline on the socket thread (the previous way, for comparison)' },
  tlsCert: { flag: 'tls-cert', kind: 'string', def: undefined, help: 'PEM certificate: serve wss' },
  tlsKey: { flag: 'tls-key', kind: 'string', def: undefined, help: 'PEM private key for --tls-cert' },
  logLevel: { flag: 'log-level', kind: LOG_LEVELS, def: 'info', help: 'pino log level' },
  statusPort: { flag: 'status-port', kind: 'int', def: 7789, min: 0, max: 65535, help: 'HTTP status port (0: off)' },
  statusHost: { flag: 'status-host', kind: 'string', def: '127.0.0.1', help: 'address the status server binds' },
  statusToken: { flag: 'status-token', kind: 'string', def: undefined, help: 'bearer token required by the status server (every route but /healthz and /readyz); not set: generated at first start into <data>/status-token (0600) and reused; none: no authentication (trusted setups only)' },
  backupDir: { flag: 'backup-dir', kind: 'string', def: undefined, help: 'backup root: POST /backup without dest writes a new backup here, and older backups here beyond --backups-keep are removed (not set: <data>-backups, beside the data directory)' },
  backupsKeep: { flag: 'backups-keep', kind: 'int', def: 7, min: 1, max: 10_000, help: 'IMGC backups kept in the backup root; older ones are removed after each successful online backup' },
  chainEndpoint: { flag: 'chain', kind: 'string', def: undefined, help: 'Substrate node WebSocket endpoint for verification by payment' },
  verifyTarget: { flag: 'verify-target', kind: 'string', def: undefined, help: 'SS58 account that receives verification payments' },
  verifyTtlMs: { flag: 'verify-ttl-ms', kind: 'int', def: 600_000, min: 1000, max: 86_400_000, help: 'how long a pending registration lives' },
  tokenTtlMs: { flag: 'token-ttl-ms', kind: 'int', def: 30 * 24 * 3600_000, min: 60_000, max: 365 * 24 * 3600_000, help: 'lifetime of a verification token' },
  restartMax: { flag: 'restart-max', kind: 'int', def: 5, min: 0, max: 1000, help: 'worker restarts allowed within --restart-window-ms' },
  restartWindowMs: { flag: 'restart-window-ms', kind: 'int', def: 60_000, min: 1000, max: 86_400_000, help: 'window of the restart budget' },
  shutdownMs: { flag: 'shutdown-ms', kind: 'int', def: 10_000, min: 100, max: 600_000, help: 'graceful shutdown deadline' },
  rateLimit: { flag: 'rate-limit', kind: 'int', def: 2000, min: 1, max: 1_000_000, help: 'requests per second allowed per connection' },
  resumeTtlMs: { flag: 'resume-ttl-ms', kind: 'int', def: 24 * 3600_000, min: 1000, max: 30 * 24 * 3600_000, help: 'lifetime of a resume token (given in the Welcome of a signed sign-in; an `active` may show it instead of a signature)' },
  handshakeMs: { flag: 'handshake-ms', kind: 'int', def: 10_000, min: 100, max: 600_000, help: 'a socket not signed in this long after it connected is closed (code 4008)' },
  signinQueue: { flag: 'signin-queue', kind: 'int', def: 2000, min: 1, max: 1_000_000, help: 'most sign-ins waiting for signature verification; past it a sign-in gets error 45003 with retryAfterMs' },
  signinThreads: { flag: 'signin-threads', kind: 'int', def: Math.max(1, availableParallelism()), min: 1, max: 256, help: 'worker threads verifying sign-in signatures (WebAssembly sr25519, ed25519, ecdsa)' },
  importLegacy: { flag: 'import-legacy', kind: 'string', def: undefined, help: "first service's backup file to import at start" },
  cluster: { flag: 'cluster', kind: 'string', def: undefined, help: 'NATS URL (nats://host:4222, with JetStream): this node joins the cluster named by --cluster-name; durable state lives in JetStream' },
  clusterName: { flag: 'cluster-name', kind: 'string', def: 'imgc', help: 'name of the cluster (letters, digits, _ or -): nodes with the same name and NATS serve the same accounts and groups' },
  clusterReplicas: { flag: 'cluster-replicas', kind: 'int', def: 1, min: 1, max: 5, help: 'JetStream replicas of the cluster\'s stream and buckets (3 on a NATS cluster of 3)' },
  clusterHeartbeatMs: { flag: 'cluster-heartbeat-ms', kind: 'int', def: 1000, min: 100, max: 60_000, help: 'cluster heartbeat: a node silent for 4 heartbeats is gone and its partitions are taken over' },
  clusterSnapshotMs: { flag: 'cluster-snapshot-ms', kind: 'int', def: 30_000, min: 100, max: 3_600_000, help: 'how often a cluster node looks whether its snapshots are due (and the ledger can be trimmed)' },
  clusterDropAfterMs: { flag: 'cluster-drop-after-ms', kind: 'int', def: 60_000, min: 100, max: 86_400_000, help: 'how long a cluster node keeps its copy of a partition that moved to another node before it drops it' },
  clusterSnapshotRecords: { flag: 'cluster-snapshot-records', kind: 'int', def: 100_000, min: 1, max: 100_000_000, help: 'a partition\'s snapshot is written again once this many records (and a quarter of the last snapshot) were stored since' },
  clusterSnapshotEntries: { flag: 'cluster-snapshot-entries', kind: 'int', def: 10_000, min: 1, max: 100_000_000, help: 'the shared snapshot (states, memberships) is written again once the ledger grew by this many entries' },
  testFaults: { flag: 'test-faults', kind: 'bool', def: false, help: 'enable test-only fault switches (never in production)' },
  checkConfig: { flag: 'check-config', kind: 'bool', def: false, help: 'validate the settings (flags, environment, --config file) and exit: 0 when valid, 2 when not' },
};

export class ConfigError extends Error {}

function envName(flag: string): string {
  return 'IMGC_' + flag.toUpperCase().replace(/-/g, '_');
}

function coerce(key: string, spec: Spec, raw: unknown, source: string): unknown {
  const where = `${key} (${source})`;
  if (Array.isArray(spec.kind)) {
    if (typeof raw !== 'string' || !spec.kind.includes(raw)) throw new ConfigError(`${where}: must be one of ${spec.kind.join(', ')}, got ${JSON.stringify(raw)}`);
    return raw;
  }
  switch (spec.kind) {
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) throw new ConfigError(`${where}: must be an integer, got ${JSON.stringify(raw)}`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw new ConfigError(`${where}: must be between ${spec.min} and ${spec.max}, got ${n}`);
      }
      return n;
    }
    case 'bool':
      if (raw === true || raw === 'true' || raw === '1' || raw === '') return true;
      if (raw === false || raw === 'false' || raw === '0') return false;
      throw new ConfigError(`${where}: must be true or false, got ${JSON.stringify(raw)}`);
    case 'string':
      if (typeof raw !== 'string' || raw.length === 0) throw new ConfigError(`${where}: must be a non-empty string`);
      return raw;
  }
  throw new ConfigError(`${where}: unknown kind`);
}

function parseArgv(argv: string[]): Map<string, string> {
  const byFlag = new Map(Object.values(specs).map((s) => [s.flag, s]));
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const spec = byFlag.get(flag);
    if (!spec) throw new ConfigError(`unknown flag --${flag}`);
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (spec.kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) value = 'true';
    else if (argv[i + 1] !== undefined) value = argv[++i]!;
    else throw new ConfigError(`--${flag} needs a value`);
    out.set(flag, value);
  }
  return out;
}

/** Reads settings from argv (without node and script), the environment and the config file they name. */
export function loadSettings(argv: string[], env: NodeJS.ProcessEnv = process.env): Settings {
  const flags = parseArgv(argv);
  const configFile = flags.get('config') ?? env[envName('config')];
  let file: Record<string, unknown> = {};
  if (configFile !== undefined) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(configFile, 'utf8'));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
      file = parsed as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config (${configFile}): ${(err as Error).message}`);
    }
    const known = new Set<string>(Object.keys(specs).concat(Object.values(specs).map((s) => s.flag)));
    for (const k of Object.keys(file)) if (!known.has(k)) throw new ConfigError(`config (${configFile}): unknown setting "${k}"`);
  }
  const settings: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs) as Array<[keyof Settings, Spec]>) {
    const fromFlag = flags.get(spec.flag);
    const fromEnv = env[envName(spec.flag)];
    const fromFile = file[key] ?? file[spec.flag];
    if (fromFlag !== undefined) settings[key] = coerce(key, spec, fromFlag, `--${spec.flag}`);
    else if (fromEnv !== undefined) settings[key] = coerce(key, spec, fromEnv, envName(spec.flag));
    else if (fromFile !== undefined) settings[key] = coerce(key, spec, fromFile, 'config file');
    else settings[key] = spec.def;
  }
  const s = settings as unknown as Settings;
  if ((s.tlsCert === undefined) !== (s.tlsKey === undefined)) throw new ConfigError('tls-cert and tls-key: give both or neither');
  if (s.statusPort !== 0 && s.statusPort === s.port) throw new ConfigError('status-port: must differ from port');
  // A backlog waits at a quarter of --max-buffered; a frame must fit well within that (an eighth).
  if (s.maxBuffered < 8 * s.maxFrame) throw new ConfigError(`max-buffered: must be at least 8 times max-frame (${8 * s.maxFrame}), got ${s.maxBuffered}`);
  checkVerification(s);
  const data = resolve(s.data);
  const root = resolve(backupRoot(s));
  if (root === data || root.startsWith(data + sep)) throw new ConfigError(`backup-dir: must be outside the data directory ${data}, got ${root}`);
  return s;
}

/** Where online backups go and are pruned: --backup-dir, else `<data>-backups` beside the data directory. */
export function backupRoot(s: Pick<Settings, 'data' | 'backupDir'>): string {
  return s.backupDir ?? `${resolve(s.data)}-backups`;
}

/** Bytes a group's `detail` answer may take at most: ~52 bytes per account (an SS58 address, quotes, comma), plus nick, announcement and the frame. */
export function detailBytesBound(maxGroupSize: number, maxBlocked: number): number {
  return (maxGroupSize + maxBlocked) * 52 + 16 * 1024;
}

/** Verification by payment needs both its settings, each well-formed, or neither. */
function checkVerification(s: Settings): void {
  if ((s.chainEndpoint === undefined) !== (s.verifyTarget === undefined)) {
    throw new ConfigError('chain and verify-target: verification by payment needs both (the node to watch and the account that receives payments), or neither');
  }
  if (s.verifyTarget !== undefined && !isSS58(s.verifyTarget)) throw new ConfigError(`verify-target: not a valid SS58 address: ${JSON.stringify(s.verifyTarget)}`);
  if (s.chainEndpoint !== undefined) {
    let url: URL | undefined;
    try { url = new URL(s.chainEndpoint); } catch { url = undefined; }
    if (!url || (url.protocol !== 'ws:' && url.protocol !== 'wss:')) throw new ConfigError(`chain: must be a ws:// or wss:// URL, got ${JSON.stringify(s.chainEndpoint)}`);
  }
  if (!CLUSTER_NAME.test(s.clusterName)) throw new ConfigError(`cluster-name: 1 to 32 letters, digits, _ or -, got ${JSON.stringify(s.clusterName)}`);
  if (s.cluster !== undefined) {
    for (const server of s.cluster.split(',')) {
      let url: URL | undefined;
      try { url = new URL(server.trim()); } catch { url = undefined; }
      if (!url || !['nats:', 'tls:'].includes(url.protocol)) throw new ConfigError(`cluster: must be nats:// or tls:// URLs (comma-separated), got ${JSON.stringify(s.cluster)}`);
    }
    if (s.importLegacy !== undefined) throw new ConfigError('import-legacy: not in cluster mode; import into one embedded node, then move it into the cluster with `imgc cluster-import`');
  }
}

/** One line per setting, for --help: flag, environment variable, what it takes, its default. */
export function usage(): string {
  return Object.values(specs).map((s) => {
    const takes = Array.isArray(s.kind) ? s.kind.join('|') : s.kind === 'int' ? (s.min !== undefined ? `${s.min}..${s.max}` : 'integer') : s.kind === 'bool' ? '' : 'text';
    const def = s.def === undefined ? 'not set' : JSON.stringify(s.def);
    return `  --${`${s.flag} ${takes}`.padEnd(34)} ${envName(s.flag).padEnd(24)} ${s.help} (default: ${def})`;
  }).join('\n');
}
