/**
 * A cluster for a test: its own nats-server (fresh store directory) and `n` real IMGC processes
 * joined to it with `--cluster`, each with its own data directory and status server. `ready()`
 * waits until every node sees every other and every partition is served by one of them. `opts.nats`:
 * on that nats-server instead (not stopped by `stop`); `opts.name`: with that cluster name (a cluster
 * restored or imported into by the operator tool).
 */
import { accountsReady } from './accounts';
import { ClientPool } from './client';
import { getStatus, startServer, type ServerHandle } from './server';
import { natsAvailable, startNats, type NatsHandle } from './nats';

export interface ClusterHandle {
  /** The nats-server (undefined when the caller gave a URL). */
  nats: NatsHandle | undefined;
  nodes: ServerHandle[];
  name: string;
  /** Starts one more node (or restarts on `dataDir`). */
  addNode(opts?: { dataDir?: string; args?: string[] }): Promise<ServerHandle>;
  /** Waits until the live nodes (those not stopped or killed) each see all the others, and every partition is served. */
  ready(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterStatus {
  ready: boolean;
  cluster: { node: string; serving: number[]; settled: boolean; partitions: number; nodes: Array<{ id: string; serving: number[]; connections: number }>; engine: { connected: boolean }; ready: boolean; ledger: Record<string, number> };
}

let seq = 0;

/** A fresh cluster name for a test (what `startCluster` uses unless given `opts.name`). */
export function clusterName(): string { return `t${process.pid}x${++seq}`; }

export async function startCluster(n: number, opts: { args?: string[]; nats?: NatsHandle; natsUrl?: string; name?: string } = {}): Promise<ClusterHandle> {
  // A URL of NATS servers started by the caller (a NATS cluster), or a server of the caller's, or one of our own.
  const nats = opts.nats ?? (opts.natsUrl === undefined ? await startNats() : undefined);
  const name = opts.name ?? clusterName();
  const base = ['--cluster', opts.natsUrl ?? nats!.url, '--cluster-name', name, '--cluster-heartbeat-ms', '250', '--partitions', '8', ...(opts.args ?? [])];
  const nodes: ServerHandle[] = [];
  const handle: ClusterHandle = {
    nats,
    nodes,
    name,
    async addNode(o = {}) {
      const s = await startServer([...base, ...(o.args ?? [])], { status: true, ...(o.dataDir !== undefined ? { dataDir: o.dataDir } : {}), readyTimeoutMs: 30_000 });
      nodes.push(s);
      return s;
    },
    async ready(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        const live = nodes.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null);
        try {
          const st = await Promise.all(live.map((s) => getStatus<ClusterStatus>(s)));
          const served = new Set(st.flatMap((x) => x.cluster.serving));
          const seeAll = st.every((x) => x.cluster.nodes.length === live.length);
          const parts = st[0]?.cluster.partitions ?? 0;
          const unique = st.reduce((k, x) => k + x.cluster.serving.length, 0) === parts;
          if (seeAll && served.size === parts && unique && st.every((x) => x.ready && x.cluster.settled)) return;
          last = JSON.stringify(st.map((x) => ({ node: x.cluster.node, serving: x.cluster.serving, sees: x.cluster.nodes.length, ready: x.ready, settled: x.cluster.settled })));
        } catch (err) {
          last = String(err);
        }
        if (Date.now() > deadline) throw new Error(`cluster not ready: ${last}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      await Promise.all(nodes.map((s) => s.stop()));
      if (!opts.nats && nats) await nats.stop();
    },
  };
  for (let i = 0; i < n; i++) await handle.addNode();
  await handle.ready();
  return handle;
}

/**
 * For a test file whose tests each start their own cluster: skipped without nats-server; after each
 * test its clients close and its cluster stops (the nodes' warnings and errors printed first when it
 * failed). `use` hands the test's cluster over to be stopped.
 */
export function clusterPerTest(): { pool: ClientPool; use(c: ClusterHandle): ClusterHandle } {
  const pool = new ClientPool();
  let current: ClusterHandle | undefined;
  before(async function () {
    if (!natsAvailable()) this.skip();
    await accountsReady();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const n of current?.nodes ?? []) process.stderr.write(`${n.output().split('\n').filter((l) => /"level":[456]0/.test(l)).slice(0, 20).join('\n')}\n`);
    }
    pool.closeAll();
    await current?.stop();
    current = undefined;
  });
  return { pool, use: (c) => (current = c) };
}
