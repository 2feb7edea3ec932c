/**
 * The floor: the least server that speaks the same frames, on one thread.
 * Handshake (spam), account → sockets, direct relay, group create and fan-out
 * (one frame per recipient with its own `to`), offline store in a plain array per account
 * delivered after `active`. No validation, no persistence, no signatures checked.
 *
 *   node dist/bench/floor.js --port P [--host 127.0.0.1] [--max-seconds 1800]
 *
 * Prints one line `floor ready <port>` on stderr and nothing else.
 */
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { flagNum, parseFlags } from './common';

interface Conn {
  ws: WebSocket;
  spam: string;
  acc: string;
}

export function startFloor(port: number, host: string): Promise<WebSocketServer> {
  const sockets = new Map<string, Set<Conn>>();
  const stored = new Map<string, string[]>();
  const seqs = new Map<string, number>();
  const groups = new Map<string, string[]>();

  function nextSeq(acc: string): number {
    const s = (seqs.get(acc) ?? 0) + 1;
    seqs.set(acc, s);
    return s;
  }

  /** Sends `head + JSON(to) + tail + seq` to every socket of `to`, or stores it. */
  function deliver(to: string, head: string, tail: string): void {
    const frame = `${head}${JSON.stringify(to)}${tail},"seq":${nextSeq(to)}}`;
    const set = sockets.get(to);
    if (set && set.size > 0) {
      for (const c of set) c.ws.send(frame);
      return;
    }
    let list = stored.get(to);
    if (!list) {
      list = [];
      stored.set(to, list);
    }
    list.push(frame);
  }

  function groupId(): string {
    const b = randomBytes(10);
    let s = 'GD';
    for (let i = 0; i < 10; i++) s += String.fromCharCode(97 + (b[i] % 26));
    return s;
  }

  const wss = new WebSocketServer({ port, host, perMessageDeflate: false });
  wss.on('connection', (ws: WebSocket) => {
    const spam = randomBytes(9).toString('base64url');
    const conn: Conn = { ws, spam, acc: '' };
    ws.send(`{"spam":"${spam}","act":"init"}`);
    ws.on('message', (data: Buffer) => {
      let r: Record<string, unknown>;
      try {
        r = JSON.parse(data.toString()) as Record<string, unknown>;
      } catch {
        return;
      }
      const cat = typeof r.cat === 'string' ? r.cat : 'chat';
      const act = r.act;
      if (act === 'active') {
        const acc = String(r.acc);
        conn.acc = acc;
        let set = sockets.get(acc);
        if (!set) {
          set = new Set();
          sockets.set(acc, set);
        }
        set.add(conn);
        ws.send('{"type":"notice","msg":"Welcome","method":{"cat":"chat","act":"active"}}');
        const list = stored.get(acc);
        if (list) {
          stored.delete(acc);
          for (const f of list) ws.send(f);
        }
        return;
      }
      if (conn.acc === '') return;
      const from = JSON.stringify(conn.acc);
      if (cat === 'chat' && (act === 'chat' || act === 'to')) {
        const msg = JSON.stringify(r.msg ?? null);
        deliver(String(r.to), `{"msg":${msg},"from":${from},"to":`, ',"method":{"cat":"chat","act":"chat"},"type":"message"');
        return;
      }
      if (cat === 'group' && act === 'create') {
        const list = [...new Set(Array.isArray(r.list) ? r.list.map(String) : [])];
        if (!list.includes(conn.acc)) list.push(conn.acc);
        const id = groupId();
        groups.set(id, list);
        const cb = typeof r.callback === 'string' ? `,"callback":${JSON.stringify(r.callback)}` : '';
        for (const m of list) {
          if (m === conn.acc) {
            deliver(m, `{"type":"notice","msg":{"id":"${id}"},"to":`, `,"method":{"act":"create","cat":"group"${cb}}`);
          } else {
            deliver(m, `{"type":"notice","msg":{"id":"${id}"},"to":`, ',"method":{"act":"create","cat":"group"}');
          }
        }
        return;
      }
      if (cat === 'group' && act === 'chat') {
        const gid = String(r.to);
        const members = groups.get(gid);
        if (!members) return;
        const head = `{"msg":${JSON.stringify(r.msg ?? null)},"from":${from},"group":${JSON.stringify(gid)},"to":`;
        const tail = ',"method":{"act":"message","cat":"group"},"cat":"group","type":"message"';
        for (const m of members) if (m !== conn.acc) deliver(m, head, tail);
      }
    });
    ws.on('close', () => {
      if (conn.acc === '') return;
      const set = sockets.get(conn.acc);
      if (set) {
        set.delete(conn);
        if (set.size === 0) sockets.delete(conn.acc);
      }
    });
    ws.on('error', () => undefined);
  });
  return new Promise((resolve, reject) => {
    wss.once('listening', () => resolve(wss));
    wss.once('error', reject);
  });
}

if (require.main === module) {
  const flags = parseFlags(process.argv.slice(2));
  const port = flagNum(flags, 'port', 8300);
  const host = flags.get('host') ?? '127.0.0.1';
  const maxSeconds = flagNum(flags, 'max-seconds', 1800);
  startFloor(port, host).then(() => {
    process.stderr.write(`floor ready ${port}\n`);
  }, (e: Error) => {
    process.stderr.write(`floor failed: ${e.message}\n`);
    process.exit(1);
  });
  // Everything stops by itself: a lifetime cap, and the parent's IPC channel if there is one.
  setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}
