/**
 * The metrics table of docs/operations.md names exactly the metrics GET /metrics emits, so the
 * table cannot drift from the code again. The real server runs with every optional part on
 * (verification by payment against the development node), and the scrape waits for the figures
 * that appear only after a while (the event loop delay of the first complete window).
 *
 * In the table, a name ending in `_*` stands for a family of metrics sharing that prefix (the
 * per-partition figures of a store, the verification figures): it must match at least one emitted
 * metric. Labels (`{worker}`) are not part of a name.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DevNode } from '../src/chain/devnode/server';
import { startServer, statusFetch, type ServerHandle } from './support/server';
import { accountsReady, devAccount } from './support/accounts';
import { startCluster } from './support/cluster';
import { natsAvailable } from './support/nats';

const OPERATIONS = resolve(__dirname, '..', '..', 'docs', 'operations.md');

interface Documented { name: string; prefix: boolean; type: string }

/** The metric names of the table under `### Metrics` (first column, in backticks, labels dropped). */
export function documentedMetrics(markdown: string): Documented[] {
  const section = markdown.split(/^### Metrics$/m)[1];
  if (section === undefined) throw new Error('docs/operations.md has no "### Metrics" section');
  const lines = section.split('\n');
  const start = lines.findIndex((l) => /^\|\s*metric\s*\|\s*type\s*\|/.test(l));
  if (start < 0) throw new Error('no "| metric | type |" table under "### Metrics"');
  const out: Documented[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const [, first = '', type = ''] = line.split('|').map((c) => c.trim());
    const names = [...first.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\{[^}]*\}$/, ''));
    if (names.length === 0) throw new Error(`a row of the metrics table names no metric: ${line}`);
    for (const name of names) {
      if (!/^[a-z_][a-z0-9_]*(_\*)?$/.test(name)) throw new Error(`not a metric name or a "prefix_*" family: \`${name}\` in ${line}`);
      const prefix = name.endsWith('_*');
      out.push({ name: prefix ? name.slice(0, -1) : name, prefix, type });
    }
  }
  return out;
}

/** Metric names and types from the `# TYPE` lines of a Prometheus text exposition. */
function emittedMetrics(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

describe('docs: the metrics table of docs/operations.md is what /metrics emits', function () {
  this.timeout(60_000);
  let node: DevNode;
  let srv: ServerHandle | undefined;

  before(async () => {
    await accountsReady();
    node = await DevNode.start();
  });
  after(async () => {
    if (srv) await srv.stop();
    await node.stop();
  });

  it('the table parser reads names, labels and prefix families, and refuses what is neither', () => {
    const md = '### Metrics\n\n| metric | type | meaning |\n|---|---|---|\n'
      + '| `a_b{worker}`, `a_c` | gauge | x |\n| `a_d_*{partition}` | counter | y |\n\nafter the table `not_this`\n';
    expect(documentedMetrics(md)).to.deep.equal([
      { name: 'a_b', prefix: false, type: 'gauge' }, { name: 'a_c', prefix: false, type: 'gauge' }, { name: 'a_d_', prefix: true, type: 'counter' },
    ]);
    expect(() => documentedMetrics(md.replace('`a_c`', '`a_<figure>`'))).to.throw(/not a metric name/);
  });

  it('every emitted metric is documented, every documented one is emitted, with its type', async () => {
    srv = await startServer(['--chain', node.url, '--verify-target', devAccount('Ferdie').address], { status: true });
    // Everything appears at once except the event loop delay, reported for the last complete 10 s window.
    let emitted = new Map<string, string>();
    const deadline = Date.now() + 25_000;
    while (Date.now() < deadline) {
      const res = await statusFetch(srv, '/metrics', { signal: AbortSignal.timeout(5000) });
      expect(res.status).to.equal(200);
      emitted = emittedMetrics(await res.text());
      if (emitted.has('imgc_event_loop_delay_seconds') && emitted.has('imgc_chain_connected')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(emitted.has('imgc_event_loop_delay_seconds'), 'the scrape never showed the event loop delay').to.equal(true);
    // Cluster mode's metrics come from a cluster node (on a real nats-server, when there is one).
    if (natsAvailable()) {
      const cluster = await startCluster(1);
      try {
        const res = await statusFetch(cluster.nodes[0]!, '/metrics', { signal: AbortSignal.timeout(5000) });
        for (const [n, t] of emittedMetrics(await res.text())) if (n.startsWith('imgc_cluster_')) emitted.set(n, t);
      } finally {
        await cluster.stop();
      }
    }

    const documented = documentedMetrics(readFileSync(OPERATIONS, 'utf8'));
    const exact = documented.filter((d) => !d.prefix);
    const families = documented.filter((d) => d.prefix);
    const covered = (name: string): boolean => exact.some((d) => d.name === name) || families.some((d) => name.startsWith(d.name));

    const undocumented = [...emitted.keys()].filter((n) => !covered(n));
    const notEmitted = exact.filter((d) => !emitted.has(d.name)).map((d) => d.name);
    const emptyFamilies = families.filter((f) => ![...emitted.keys()].some((n) => n.startsWith(f.name))).map((f) => `${f.name}*`);
    expect({ undocumented, notEmitted, emptyFamilies }).to.deep.equal({ undocumented: [], notEmitted: [], emptyFamilies: [] });

    // Where a row names one type, every metric it documents has that type (a name with a row of its
    // own, such as imgc_delivery_latency_seconds, is documented by that row, not by its prefix family).
    const wrongType: string[] = [];
    for (const d of documented) {
      if (d.type !== 'gauge' && d.type !== 'counter') continue;
      for (const [n, t] of emitted) {
        const documents = d.prefix ? n.startsWith(d.name) && !exact.some((e) => e.name === n) : n === d.name;
        if (documents && t !== d.type) wrongType.push(`${n}: documented ${d.type}, emitted ${t}`);
      }
    }
    expect(wrongType).to.deep.equal([]);
  });
});
