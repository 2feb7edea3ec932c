/**
 * The demo page (GET / on the service's WebSocket port): direct and group chat on the SDK, history
 * scrolling, a delivery state per message, end-to-end encryption (this profile's device keys and
 * groups in localStorage) shown per message and per conversation. Bundled for the browser by
 * src/web/build.ts.
 */
import { ClientCode, ImgcClient, ImgcError, WebStorage, type E2EInfo, type MessageFrame, type NoticeFrame } from '../client/browser.js';
import { loadKey } from './key.js';
import { verify } from './verify.js';

type Conv = { kind: 'direct' | 'group'; id: string; title: string };
/** How a message was carried: encrypted end to end, in plaintext, or encrypted but unreadable here. */
type Carried = 'encrypted' | 'plain' | 'failed';
interface Line {
  key: string; from: string; text: string; seq?: number; state?: 'sending' | 'stored' | 'failed'; note?: string;
  /** Unknown while a send is on its way. */
  e2e?: Carried;
  /** Why an encrypted one could not be read (its code and message). */
  e2eError?: { code: number; message: string };
}

const $ = <T extends HTMLElement>(sel: string): T => document.querySelector(sel) as T;
const short = (a: string) => (a.length > 14 ? `${a.slice(0, 6)}…${a.slice(-4)}` : a);
const textOf = (m: unknown) => (typeof m === 'string' ? m : JSON.stringify(m));

const key = loadKey();
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
const client = new ImgcClient({
  url, account: key.address, signer: key.sign, WebSocket: WebSocket as never,
  // 1,000 kept texts: a site's localStorage holds some 5 MB (WebStorage drops them first when full).
  e2e: { storage: new WebStorage(localStorage), verify, keptTexts: 1000 },
});

const convs = new Map<string, Conv>(JSON.parse(localStorage.getItem('imgc.convs') ?? '[]') as Array<[string, Conv]>);
const lines = new Map<string, Line[]>();
const older = new Map<string, { before?: number; more: boolean }>();
/** Whether the last message sent or received in each conversation was encrypted. */
const convE2E = new Map<string, 'encrypted' | 'plain'>();
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

const LOCK = '🔒';
const OPEN = '🔓';

/** The conversation's badge in the title bar: encrypted, not encrypted, or nothing yet. */
function renderBadge(): void {
  const badge = $('#e2e-badge');
  const st = current === undefined ? undefined : convE2E.get(current);
  badge.hidden = st === undefined;
  badge.dataset.e2e = st ?? '';
  badge.className = st ?? '';
  badge.textContent = st === 'encrypted' ? `${LOCK} end-to-end encrypted` : st === 'plain' ? `${OPEN} not encrypted` : '';
  badge.title = st === 'encrypted'
    ? 'messages here are encrypted end to end: the server cannot read them'
    : st === 'plain' ? 'the other side has no device keys (a W3OS client): messages go in plaintext' : '';
}

/** The last message sent or received in `conv` went so (a failed one was encrypted too). */
function noteCarried(conv: string, c: Carried | undefined): void {
  if (c === undefined) return;
  convE2E.set(conv, c === 'plain' ? 'plain' : 'encrypted');
  if (conv === current) renderBadge();
}

/** The lock (or open lock) that goes with a message line. */
function e2eMark(l: Line): HTMLElement | undefined {
  if (l.e2e === undefined || l.e2e === 'failed') return undefined;
  const mark = document.createElement('span');
  mark.className = `e2e ${l.e2e}`;
  mark.textContent = l.e2e === 'encrypted' ? LOCK : `${OPEN} not encrypted`;
  mark.title = l.e2e === 'encrypted' ? 'encrypted end to end' : 'sent in plaintext (not encrypted end to end)';
  return mark;
}

function renderLines(keepScroll = false): void {
  const box = $('#messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const prevHeight = box.scrollHeight;
  const list = current === undefined ? [] : lines.get(current) ?? [];
  box.replaceChildren(...list.map((l) => {
    const div = document.createElement('div');
    const mine = l.from === key.address;
    div.className = `msg ${mine ? 'mine' : 'theirs'}${l.e2e === 'failed' ? ' undecryptable' : ''}`;
    div.dataset.text = l.text;
    if (l.e2e !== undefined) div.dataset.e2e = l.e2e;
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = mine ? 'you' : short(l.from);
    const mark = e2eMark(l);
    if (mark) who.append(' ', mark);
    const body = document.createElement('div');
    body.className = 'body';
    if (l.e2e === 'failed') {
      body.textContent = `⚠ could not be decrypted (error ${l.e2eError?.code ?? '?'})`;
      body.title = l.e2eError?.message ?? '';
      div.dataset.code = String(l.e2eError?.code ?? '');
    } else {
      body.textContent = l.text;
    }
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

/** How a received (or history) frame was carried; undefined when the client says nothing (a notice). */
function carriedOf(info: E2EInfo | undefined): Pick<Line, 'e2e' | 'e2eError'> {
  if (info === undefined) return {};
  if (info.error !== undefined) return { e2e: 'failed', e2eError: { code: info.error.code, message: info.error.message } };
  return { e2e: info.encrypted ? 'encrypted' : 'plain' };
}

function lineOf(f: MessageFrame | NoticeFrame): Line {
  const carried = carriedOf((f as { e2e?: E2EInfo }).e2e);
  // An unreadable one has no text (msg is null): never show what the record holds.
  const text = carried.e2e === 'failed' ? '' : textOf(f.msg);
  return {
    key: `s${f.seq}`, from: f.from ?? '', text, ...carried,
    ...(f.seq === undefined ? {} : { seq: f.seq }), ...(f.from === key.address ? { state: 'stored' as const } : {}),
  };
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
  // The newest page says how the conversation goes when nothing was sent or received here yet.
  if (pos.before === undefined && !convE2E.has(conv.id)) noteCarried(conv.id, fresh.at(-1)?.e2e);
  lines.set(conv.id, [...fresh, ...list].sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity)));
  if (conv.id === current) renderLines(pos.before !== undefined);
}

async function open(id: string): Promise<void> {
  current = id;
  const c = convs.get(id)!;
  $('#title').textContent = c.kind === 'group' ? `# ${c.title}` : `@ ${c.id}`;
  $('#compose').hidden = false;
  renderConvs();
  renderBadge();
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
  const line = lineOf(m);
  noteCarried(id, line.e2e);
  push(id, line);
});
client.on('notice', (n) => {
  const msg = n.msg as { id?: string } | null;
  if (n.method.cat === 'group' && n.method.act === 'create' && msg?.id) addConv({ kind: 'group', id: msg.id, title: msg.id });
  if (n.method.cat === 'group' && n.method.act === 'notice' && n.group) push(n.group, { ...lineOf(n), text: `📣 ${textOf(n.msg)}` });
});
/** This browser's device is ready for end-to-end encryption: its key packages are on the server. */
client.on('e2e', ({ device }) => {
  const el = $('#device');
  el.hidden = false;
  el.dataset.device = device;
  el.textContent = LOCK;
  el.title = `end-to-end encryption on: this browser is device ${device.slice(0, 16)}…, its keys are on the server`;
});

// What the client reports beside requests: a key package top-up refused, a frame it could not read.
client.on('error', showError);
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
  sent.then((r) => {
    line.state = 'stored';
    line.e2e = r.encrypted ? 'encrypted' : 'plain';
    noteCarried(conv.id, line.e2e);
  }, (e: unknown) => {
    line.state = 'failed';
    line.note = e instanceof ImgcError ? `${e.code}` : 'failed';
    // Refused end to end (a peer's keys not vouched for, or plaintext into an encrypted chat): say why.
    if (e instanceof ImgcError && (e.code === ClientCode.E2E_BAD_VOUCH || e.code === ClientCode.E2E_NOT_ENCRYPTED)) showError(e);
  })
    .finally(() => { if (conv.id === current) renderLines(); });
};

$('#messages').onscroll = () => { if ($('#messages').scrollTop === 0) void loadOlder().catch(showError); };

// Group states are written a moment after they change: write them before the page goes.
addEventListener('pagehide', () => client.e2e?.flush());

renderConvs();
client.connect().then(() => {
  const first = [...convs.keys()][0];
  if (first !== undefined && current === undefined) void open(first);
}, showError);
