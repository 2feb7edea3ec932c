/**
 * Start-up, tried as a new operator: every configuration the machine cannot honour exits 2 with one
 * clear line (no stack, no crash loop), and the help answers.
 */
import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import { freePort, runToExit, tempDir } from './support/server';

/** The lines a run printed that are fatal, parsed. */
function fatalLines(output: string): string[] {
  return output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 60).map((l) => l.msg);
}

async function occupy(port: number): Promise<Server> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
  return s;
}

describe('operations: start-up failures', function () {
  this.timeout(60_000);

  it('a WebSocket port in use: exit 2, one line naming the port, no stack', async () => {
    const port = await freePort();
    const blocker = await occupy(port);
    try {
      const r = await runToExit(['--port', String(port), '--host', '127.0.0.1', '--status-port', '0', '--data', tempDir()]);
      expect(r.code, r.output).to.equal(2);
      expect(fatalLines(r.output)).to.deep.equal([`cannot start: port ${port} on 127.0.0.1 is already in use`]);
      expect(r.output).to.not.match(/Unhandled|at .*\.js:\d+/);
    } finally {
      blocker.close();
    }
  });

  it('a status port in use: exit 2 before the service says it listens', async () => {
    const sport = await freePort();
    const blocker = await occupy(sport);
    try {
      const r = await runToExit(['--port', String(await freePort()), '--status-port', String(sport), '--data', tempDir()]);
      expect(r.code, r.output).to.equal(2);
      expect(fatalLines(r.output)).to.deep.equal([`cannot start: status-port ${sport} on 127.0.0.1 is already in use`]);
      expect(r.output).to.not.match(/IMGC listening/);
    } finally {
      blocker.close();
    }
  });

  it('an unusable data directory: exit 2 at once, naming it', async () => {
    const r = await runToExit(['--port', String(await freePort()), '--status-port', '0', '--data', '/proc/imgc'], { timeoutMs: 15_000 });
    expect(r.signal, 'it did not hang').to.equal(null);
    expect(r.code, r.output).to.equal(2);
    expect(fatalLines(r.output)[0]).to.match(/^cannot start: data directory \/proc\/imgc is not usable/);
  });

  it('--check-config refuses a bad log level (also from the environment), verify target, chain URL, and a chain without a target', async () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--check-config'], { IMGC_LOG_LEVEL: 'verbose' }, /logLevel \(IMGC_LOG_LEVEL\): must be one of fatal, error, warn, info, debug, trace, silent/],
      [['--check-config', '--log-level', 'verbose'], {}, /log-level/],
      [['--check-config', '--chain', 'ws://127.0.0.1:9944', '--verify-target', 'notss58'], {}, /verify-target: not a valid SS58 address/],
      [['--check-config', '--chain', 'notaurl', '--verify-target', '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty'], {}, /chain: must be a ws:\/\/ or wss:\/\/ URL/],
      [['--check-config', '--chain', 'ws://127.0.0.1:9944'], {}, /verification by payment needs both/],
      [['--check-config', '--verify-target', '5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty'], {}, /verification by payment needs both/],
    ];
    for (const [args, env, re] of cases) {
      const r = await runToExit(args, { env });
      expect(r.code, `${args.join(' ')} ${JSON.stringify(env)}: ${r.output}`).to.equal(2);
      expect(fatalLines(r.output), args.join(' ')).to.have.length(1);
      expect(fatalLines(r.output)[0]).to.match(re);
    }
  });

  it('-h and --help list every setting with what it takes and its default, never "undefined"', async () => {
    for (const flag of ['-h', '--help']) {
      const r = await runToExit([flag]);
      expect(r.code, r.output).to.equal(0);
      expect(r.output).to.match(/--port 0\.\.65535\s+IMGC_PORT/);
      expect(r.output).to.match(/--fsync always\|grouped\|off/);
      expect(r.output).to.match(/--chain text .*\(default: not set\)/);
      expect(r.output).to.not.match(/undefined/);
    }
  });
});
