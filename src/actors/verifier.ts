/**
 * The verification actor (address `verify:book`): the book of pending registrations and proofs,
 * and the chain watcher's cursor (last finalized block processed). It decides `reg`, matches the
 * transfers the chain watcher posts, and hands out proofs for tokens. Its state is stored
 * after every decision that changes it, so a restart between `reg` and the payment still verifies.
 */
import { Registrations, defaultAmountRange, type RegEvent, type RegState } from '../chain/registrations';
import { formatUnits } from '../chain/units';
import { Code } from '../protocol/codes';
import { errorFrame, noticeFrame, vertifyTemplate } from '../protocol/frames';
import type { FromShard, Post, VerifyCall } from './envelopes';
import { VERIFY_ADDRESS } from './address';

export { VERIFY_ADDRESS };

export interface VerifierState {
  book: RegState | null;
  lastProcessed: number | null;
}

export type VerifierEvent = { e: 'reg'; ev: RegEvent } | { e: 'processed'; block: number };

export interface VerifierConfig { target: string | undefined; ttlMs: number }

export class Verifier {
  /** The live book, when verification is configured; otherwise the state is kept as plain data. */
  private book: Registrations | undefined;
  private decimals = 12;
  private plain: RegState;
  private lastProcessed: number | null;

  constructor(private readonly cfg: VerifierConfig, s: VerifierState = { book: null, lastProcessed: null }) {
    this.plain = s.book ?? { v: 1, pending: {}, verified: {} };
    this.lastProcessed = s.lastProcessed;
    if (cfg.target) this.book = this.makeBook(this.plain);
  }

  state(): VerifierState {
    return { book: this.book ? this.book.state() : this.plain, lastProcessed: this.lastProcessed };
  }

  /** Replays a journaled event (restore); live decisions apply their own. */
  apply(ev: VerifierEvent): void {
    if (ev.e === 'processed') { this.lastProcessed = ev.block; return; }
    if (this.book) return this.book.apply(ev.ev);
    // Without a book (verification off now) only the record is kept, for a later start with it on.
    const r = ev.ev;
    if (r.t === 'pending') this.plain.pending[r.entry.account] = r.entry;
    else if (r.t === 'expired') delete this.plain.pending[r.account];
    else { delete this.plain.pending[r.proof.account]; this.plain.verified[r.proof.account] = r.proof; }
  }

  private makeBook(state: RegState): Registrations {
    return new Registrations({ target: this.cfg.target!, ...defaultAmountRange(this.decimals), ttlMs: this.cfg.ttlMs }, state);
  }

  /** The amount range follows the chain's decimals, known once the watcher has connected. */
  private bookFor(decimals: number): Registrations | undefined {
    if (this.book && decimals !== this.decimals) {
      this.decimals = decimals;
      this.book = this.makeBook(this.book.state());
    }
    return this.book;
  }

  /** Decides one call; returns the events to journal (already applied) and pushes the output. */
  decide(call: VerifyCall, out: FromShard[]): VerifierEvent[] {
    switch (call.op) {
      case 'reg': {
        const book = this.bookFor(call.decimals);
        if (!book) {
          out.push({ t: 'reply', conn: call.conn, frame: errorFrame(Code.VERIFY_DISABLED, 'verification by payment is not enabled on this server', call.request) });
          return [];
        }
        const r = book.reg(call.account, call.now);
        const reply = (msg: unknown) => out.push({ t: 'reply', conn: call.conn, frame: noticeFrame('vertify', 'reg', msg, call.request.callback) });
        if (r.kind === 'verified') reply({ ...r.proof, done: true });
        else if (r.kind === 'pending') {
          reply({ amount: formatUnits(r.entry.amount, call.decimals), account: this.cfg.target, base: r.entry.amount, expires: r.entry.expiresAt });
        } else {
          out.push({ t: 'reply', conn: call.conn, frame: errorFrame(Code.UNAVAILABLE, 'every amount is taken right now, try again later', call.request) });
        }
        return wrap(r.events);
      }
      case 'transfer': {
        const book = this.bookFor(call.decimals);
        if (!book) return [];
        const t = call.transfer;
        const r = book.match({ ...t, amount: BigInt(t.amount) }, call.now);
        if (r.kind === 'verified') out.push(notify(r.proof.account, { data: { ...r.proof, done: true } }));
        if (r.kind === 'wrong-amount') {
          const expected = formatUnits(r.expected, call.decimals);
          out.push(notify(r.account, { error: `paid ${formatUnits(r.got, call.decimals)}, expected exactly ${expected}`, expected }));
        }
        return wrap(r.events);
      }
      case 'sweep':
        return this.book ? wrap(this.book.sweep(call.now)) : [];
      case 'processed':
        if (this.lastProcessed !== null && call.block <= this.lastProcessed) return [];
        this.lastProcessed = call.block;
        return [{ e: 'processed', block: call.block }];
      case 'cursor':
        out.push({ t: 'cursor', lastProcessed: this.lastProcessed });
        return [];
      case 'proof': {
        const proof = this.state().book?.verified[call.account];
        out.push({ t: 'proof', conn: call.conn, request: call.request, proof: proof ?? null });
        return [];
      }
      case 'import': {
        // Legacy proofs become verified entries; they come from the operator's own old server.
        const ev: VerifierEvent = { e: 'reg', ev: { t: 'verified', proof: call.proof } };
        this.apply(ev);
        return [ev];
      }
    }
  }
}

function wrap(events: RegEvent[]): VerifierEvent[] {
  return events.map((ev) => ({ e: 'reg', ev }));
}

/** The payment notice goes to the account's own log: read at sign-in if it is away, on every device if not. */
function notify(account: string, msg: unknown): Post {
  return { t: 'post', conv: 'own', tpl: vertifyTemplate('done', msg), from: null, to: [account] };
}
