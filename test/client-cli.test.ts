/**
 * The `imgc` command line, driven as a person or a script would: spawned, its output read (--json).
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { foundIn } from './support/files';
import { startServer, tempDir, type ServerHandle } from './support/server';

const CLI = resolve(__dirname, '..', 'src', 'cli', 'main.js');

interface Run { code: number | null; stdout: string; stderr: string }

function imgc(args: string[], env: Record<string, string>, opts: { onLine?: (line: string) => void } = {}): Promise<Run> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) opts.onLine?.(l);
    });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
    p.once('exit', (code) => { clearTimeout(t); res({ code, stdout, stderr }); });
  });
}

function json(r: Run): any {
  expect(r.code, `exit code; stderr: ${r.stderr}`).to.equal(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('imgc command line', function () {
  this.timeout(90_000);
  let srv: ServerHandle;
  let dir: string;
  let env: (who: string) => Record<string, string>;

  before(async () => {
    srv = await startServer(['--auth', 'signed']);
    dir = tempDir('imgc-cli-');
    env = (who) => ({ IMGC_URL: srv.url, IMGC_KEY: join(dir, `${who}.json`) });
    for (const who of ['alice', 'bob', 'carol']) json(await imgc(['key', 'new', '--json', ...(who === 'bob' ? ['--type', 'ed25519'] : [])], env(who)));
  });
  after(async () => { await srv?.stop(); });

  it('key new writes a 0600 key file; key show prints its address; a second key new is refused', async () => {
    const made = json(await imgc(['key', 'new', '--json'], env('dave')));
    expect(made.address).to.match(/^5[1-9A-HJ-NP-Za-km-z]{47}$/);
    expect(statSync(join(dir, 'dave.json')).mode & 0o777).to.equal(0o600);
    expect(json(await imgc(['key', 'show', '--json'], env('dave'))).address).to.equal(made.address);
    const again = await imgc(['key', 'new'], env('dave'));
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/exists/);
  });

  it('send, listen, history: a message sent by one CLI is printed by the other, once, and paged back', async () => {
    const bob = json(await imgc(['key', 'show', '--json'], env('bob'))).address as string;
    const alice = json(await imgc(['key', 'show', '--json'], env('alice'))).address as string;
    // bob listens for two frames (JSON lines) while alice sends.
    let lines = 0;
    const listening = imgc(['listen', '--json', '--count', '2'], env('bob'), { onLine: () => { lines++; } });
    const sent1 = json(await imgc(['send', bob, 'hello', 'bob', '--json'], env('alice')));
    expect(sent1.mid).to.be.a('string');
    expect(sent1.to).to.equal(bob);
    json(await imgc(['send', bob, 'second', '--json'], env('alice')));
    const heard = await listening;
    expect(heard.code, heard.stderr).to.equal(0);
    const frames = heard.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(frames.map((f) => f.msg)).to.deep.equal(['hello bob', 'second']);
    expect(frames[0].from).to.equal(alice);
    expect(lines).to.equal(2);
    // A second listen resumes after what was printed: nothing is printed twice.
    const again = imgc(['listen', '--json', '--count', '1', '--timeout', '3000'], env('bob'));
    const third = imgc(['send', bob, 'third', '--json'], env('alice'));
    const h = await again;
    const t3 = await third;
    expect(t3.code, t3.stderr).to.equal(0);
    expect(h.code, `${h.stderr} ${h.stdout}`).to.equal(0);
    expect(h.stdout.trim().split('\n').map((l) => JSON.parse(l).msg)).to.deep.equal(['third']);

    const hist = await imgc(['history', alice, '--limit', '2', '--json'], env('bob'));
    expect(hist.code, hist.stderr).to.equal(0);
    expect(hist.stdout.trim().split('\n').map((l) => JSON.parse(l).msg)).to.deep.equal(['second', 'third']);
    const human = await imgc(['history', alice], env('bob'));
    expect(human.stdout).to.include(`${alice}: hello bob`);
  });

  it('end to end: `keys` publishes the device; sends are encrypted, marked, read by listen and by history in a later process', async () => {
    // `key new` prints the address; `keys` publishes the device's packages (the e2e file is made then).
    const [erin, frank] = await Promise.all(['erin', 'frank'].map(async (who) => json(await imgc(['key', 'new', '--json'], env(who))).address as string));
    const devices = await Promise.all(['erin', 'frank'].map(async (who) => json(await imgc(['keys', '--json'], env(who))).device as string));
    for (const d of devices) expect(d).to.match(/^[0-9a-f]{64}$/);
    expect(statSync(join(dir, 'frank.e2e.json')).mode & 0o777).to.equal(0o600);
    const secret = `cli-secret-${Date.now()}`;
    const sent = await imgc(['send', frank!, secret], env('erin'));
    expect(sent.code, sent.stderr).to.equal(0);
    expect(sent.stdout).to.match(/^sent \S+ to \S+ 🔒/);
    const heard = json(await imgc(['listen', '--json', '--count', '1'], env('frank')));
    expect(heard.msg).to.equal(secret);
    expect(heard.e2e).to.deep.equal({ encrypted: true });
    // A later process reads it again from the device's file (MLS keys are used once).
    const human = await imgc(['history', erin!], env('frank'));
    expect(human.stdout).to.include(`🔒 ${erin}: ${secret}`);
    expect(foundIn(srv.dataDir, secret), 'nowhere in the data directory').to.equal(false);
    expect(foundIn(dir, secret), 'the control: kept in frank\'s device file').to.equal(true);
  });

  it('group create, chat, detail, history', async () => {
    const bob = json(await imgc(['key', 'show', '--json'], env('bob'))).address as string;
    const carol = json(await imgc(['key', 'show', '--json'], env('carol'))).address as string;
    const { id } = json(await imgc(['group', 'create', bob, carol, '--json'], env('alice')));
    expect(id).to.match(/^GD[A-Za-z]{10}$/);
    const d = json(await imgc(['group', 'detail', id, '--json'], env('bob')));
    expect(d.group).to.include.members([bob, carol]);
    json(await imgc(['group', 'chat', id, 'hi', 'all', '--json'], env('carol')));
    const h = await imgc(['history', id, '--json'], env('alice'));
    expect(h.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((f) => f.type === 'message').map((f) => f.msg)).to.deep.equal(['hi all']);
  });

  it('a refusal exits 2 with the server\'s code; no server exits 2 after --timeout', async () => {
    const bad = await imgc(['send', 'not-an-address', 'x', '--json'], env('alice'));
    expect(bad.code).to.equal(2);
    expect(JSON.parse(bad.stderr.trim()).code).to.equal(44009);
    const down = await imgc(['send', 'x', 'y', '--url', 'ws://127.0.0.1:1', '--timeout', '500'], env('alice'));
    expect(down.code).to.equal(2);
    expect(down.stderr).to.match(/could not sign in/);
    const usage = await imgc(['send'], env('alice'));
    expect(usage.code).to.equal(1);
  });
});
