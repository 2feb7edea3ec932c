/**
 * The demo page (GET / on the service's WebSocket port): direct and group chat on the SDK, history
 * scrolling, a delivery state per message. Bundled for the browser by src/web/build.ts.
 */
import { ImgcClient, ImgcError, type MessageFrame, type NoticeFrame } from '../client/browser.js';
import { loadKey } from './key.js';

type Conv = { kind: 'direct' | 'group'; id: string; title: string };
interface Line { key: string; from: string; text: string; seq?: number; state?: 'sending' | 'stored' | 'failed'; note?: string }

const $ = <T extends HTMLElement>(sel: string): T => document.querySelector(sel) as T;
const short = (a: string) => (a.length > 14 ? `${a.slice(0, 6)}…${a.slice(-4)}` : a);
const textOf = (m: unknown) => (typeof m === 'string' ? m : JSON.stringify(m));

const key = loadKey();
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
const client = new ImgcClient({ url, account: key.address, signer: key.sign, WebSocket: WebSocket as never });

const convs = new Map<string, Conv>(JSON.parse(localStorage.getItem('imgc.convs') ?? '[]') as Array<[string, Conv]>);
const lines = new Map<string, Line[]>();
const older = new Map<string, { before?: number; more: boolean }>();
let current: string | undefined;

function saveConvs(): void { localStorage.setItem('imgc.convs', JSON.stringify([...convs])); }

function addConv(c: Conv): void {
  if (!convs.has(c.id)) { convs.set(c.id, c); saveConvs(); }
  renderConvs();
}

function renderConvs(): void {
  const ul = $('#convs');
  ul.replaceChildren(...[...convs.values()].map((c) => {
    const li = document.createElement('li');
    li.className = c.id === current ? 'active' : '';
    li.dataset.id = c.id;
    li.innerHTML = `<span class="kind">${c.kind === 'group' ? '#' : '@'}</span>`;
    li.append(document.createTextNode(c.title));
    li.onclick = () => void open(c.id);
    return li;
  }));
}

function renderLines(keepScroll = false): void {
  const box = $('#messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const prevHeight = box.scrollHeight;
  const list = current === undefined ? [] : lines.get(current) ?? [];
  box.replaceChildren(...list.map((l) => {
    const div = document.createElement('div');
    const mine = l.from === key.address;
    div.className = `msg ${mine ? 'mine' : 'theirs'}`;
    div.dataset.text = l.text;
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = mine ? 'you' : short(l.from);
    const body = document.createElement('div');
    body.className = 'body';
    body.textContent = l.text;
    div.append(who, body);
    if (mine && l.state) {
      const st = document.createElement('div');
      st.className = `state ${l.state}`;
      st.textContent = l.state === 'sending' ? 'sending…' : l.state === 'stored' ? '✓ stored' : `✗ ${l.note ?? 'failed'}`;
      div.append(st);
    }
    return div;
  }));
  if (keepScroll) box.scrollTop = box.scrollHeight - prevHeight;
  else if (atBottom || !keepScroll) box.scrollTop = box.scrollHeight;
}

function push(conv: string, l: Line, front = false): void {
  const list = lines.get(conv) ?? [];
  if (l.seq !== undefined && list.some((x) => x.seq === l.seq)) return;
  if (front) list.unshift(l); else list.push(l);
  lines.set(conv, list);
  if (conv === current) renderLines();
  else document.querySelector(`#convs li[data-id="${conv}"]`)?.classList.add('unread');
}

function lineOf(f: MessageFrame | NoticeFrame): Line {
  return { key: `s${f.seq}`, from: f.from ?? '', text: textOf(f.msg), ...(f.seq === undefined ? {} : { seq: f.seq }), ...(f.from === key.address ? { state: 'stored' as const } : {}) };
}

/** Loads one more page of history (backwards) for the open conversation. */
async function loadOlder(): Promise<void> {
  if (current === undefined) return;
  const conv = convs.get(current)!;
  const pos = older.get(conv.id) ?? { more: true };
  if (!pos.more) return;
  const page = await client.historyPage({ ...(conv.kind === 'group' ? { group: conv.id } : { with: conv.id }), limit: 20, ...(pos.before === undefined ? {} : { before: pos.before }) });
  older.set(conv.id, { before: page.first, more: page.more && page.messages.length > 0 });
  const list = lines.get(conv.id) ?? [];
  const have = new Set(list.map((l) => l.seq));
  const fresh = page.messages.filter((m) => m.type === 'message' && !have.has(m.seq)).map(lineOf);
  lines.set(conv.id, [...fresh, ...list].sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity)));
  if (conv.id === current) renderLines(pos.before !== undefined);
}

async function open(id: string): Promise<void> {
  current = id;
  const c = convs.get(id)!;
  $('#title').textContent = c.kind === 'group' ? `# ${c.title}` : `@ ${c.id}`;
  $('#compose').hidden = false;
  renderConvs();
  renderLines();
  if (!older.has(id)) await loadOlder().catch(showError);
}

function showError(e: unknown): void {
  const t = $('#toast');
  t.textContent = e instanceof ImgcError ? `${e.message}` : String(e);
  t.hidden = false;
  setTimeout(() => { t.hidden = true; }, 4000);
}

client.on('message', (m) => {
  const group = (m as { group?: string }).group;
  const id = group ?? m.from;
  addConv({ kind: group ? 'group' : 'direct', id, title: group ?? short(m.from) });
  push(id, lineOf(m));
});
client.on('notice', (n) => {
  const msg = n.msg as { id?: string } | null;
  if (n.method.cat === 'group' && n.method.act === 'create' && msg?.id) addConv({ kind: 'group', id: msg.id, title: msg.id });
  if (n.method.cat === 'group' && n.method.act === 'notice' && n.group) push(n.group, { ...lineOf(n), text: `📣 ${textOf(n.msg)}` });
});
client.on('state', (s) => {
  const el = $('#state');
  el.textContent = s;
  el.className = `state-${s}`;
});

$('#me').textContent = key.address;
$('#me').title = 'your address: click to copy';
$('#me').onclick = () => void navigator.clipboard?.writeText(key.address);

$('#new-direct').onsubmit = (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('#new-direct input');
  const to = input.value.trim();
  if (!to) return;
  addConv({ kind: 'direct', id: to, title: short(to) });
  input.value = '';
  void open(to);
};

$('#new-group').onsubmit = (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('#new-group input');
  const list = input.value.split(/[\s,]+/).filter(Boolean);
  if (list.length === 0) return;
  client.group.create(list).then((id) => {
    input.value = '';
    addConv({ kind: 'group', id, title: id });
    return open(id);
  }).catch(showError);
};

$('#compose').onsubmit = (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('#compose input');
  const text = input.value.trim();
  if (!text || current === undefined) return;
  input.value = '';
  const conv = convs.get(current)!;
  const line: Line = { key: `l${Date.now()}${Math.random()}`, from: key.address, text, state: 'sending' };
  push(conv.id, line);
  const sent = conv.kind === 'group' ? client.group.chat(conv.id, text) : client.send(conv.id, text);
  sent.then(() => { line.state = 'stored'; }, (e: unknown) => { line.state = 'failed'; line.note = e instanceof ImgcError ? `${e.code}` : 'failed'; })
    .finally(() => { if (conv.id === current) renderLines(); });
};

$('#messages').onscroll = () => { if ($('#messages').scrollTop === 0) void loadOlder().catch(showError); };

renderConvs();
client.connect().then(() => {
  const first = [...convs.keys()][0];
  if (first !== undefined && current === undefined) void open(first);
}, showError);
