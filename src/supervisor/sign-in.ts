/**
 * Sign-in, in one place: signature checks (a piscina pool), resume tokens and their revocations
 * (an actor state, `sessions:revoked`, kept whole by merging every node's), and the figures of both:
 * sign-ins by method, failures by reason, sockets closed at the handshake deadline, and every error
 * frame a connection answered (counted by kind, logged at debug with the remote address).
 */
import type { Logger } from '../log';
import { Code } from '../protocol/codes';
import type { Connection, SignInFailure, SignInMethod } from '../actors/connection';
import type { StateOut } from '../actors/envelopes';
import { mergeRevoked, REVOKED_ADDRESS, Sessions, type Issued, type ResumeCheck } from '../net/sessions';
import { SignatureChecker } from '../net/signatures';
import type { SignInView } from '../status/source';
import { errorsTotal } from '../status/instruments';

/** Refusals that answer a well-formed request the service declines (not a bad frame). */
const DECLINED: ReadonlySet<number> = new Set([Code.NOT_PERMITTED, Code.VERIFY_DISABLED, Code.UNAVAILABLE, Code.INTERNAL]);

/** Sign-in figures: by method, failures by reason, sockets closed by the handshake deadline. */
export interface SignInCounters {
  byMethod: Record<SignInMethod, number>;
  failures: Record<SignInFailure, number>;
  handshakeTimeouts: number;
}

export interface SignInOptions {
  threads: number;
  queue: number;
  resumeTtlMs: number;
  handshakeMs: number;
}

export class SignIn {
  readonly figures: SignInCounters = {
    byMethod: { sig: 0, resume: 0, open: 0 },
    failures: { 'bad-sig': 0, 'no-sig': 0, 'queue-full': 0, malformed: 0, 'bad-mac': 0, 'other-account': 0, expired: 0, revoked: 0 },
    handshakeTimeouts: 0,
  };
  private readonly signatures: SignatureChecker;
  private sessions: Sessions | undefined;

  constructor(
    private readonly opts: SignInOptions,
    private readonly counters: { rateLimited: number; signInsRefused: number; badFrames: number },
    private readonly log: Logger,
  ) {
    this.signatures = new SignatureChecker({ threads: opts.threads, maxWaiting: opts.queue });
  }

  /**
   * Resume tokens from now on: `key` (the node's, or the cluster's), the revocations stored so far,
   * and where a new revocation list is written (`persist`: a state handed on like any actor's).
   */
  startSessions(key: Buffer, stored: unknown, persist: (s: StateOut) => void): void {
    this.sessions = new Sessions(key, this.opts.resumeTtlMs, stored, (state) => persist({ t: 'state', address: REVOKED_ADDRESS, state }));
  }

  /**
   * A state about to be applied over `stored`: a revocation list (of any node) is merged with the
   * stored one, whoever wrote last, and adopted here.
   */
  applying(s: StateOut, stored: (address: string) => unknown): StateOut {
    if (s.address !== REVOKED_ADDRESS) return s;
    const merged = { ...s, state: mergeRevoked(stored(REVOKED_ADDRESS), s.state) };
    this.sessions?.adopt(merged.state);
    return merged;
  }

  verifySignature(message: string, signature: string, address: string): Promise<boolean> {
    return this.signatures.verify(message, signature, address);
  }

  checkResume(token: string, account: string): ResumeCheck { return this.live.check(token, account); }
  issueResume(account: string): Issued { return this.live.issue(account); }
  revokeAccount(account: string): void { this.live.revokeAccount(account); }
  revokeId(id: string, exp: number): void { this.live.revokeId(id, exp); }

  signedIn(method: SignInMethod): void { this.figures.byMethod[method]++; }
  signInFailed(reason: SignInFailure): void { this.figures.failures[reason]++; }
  handshakeTimedOut(): void { this.figures.handshakeTimeouts++; }

  /** Every error frame a connection answers with: counted by kind, logged at debug with the remote address. */
  refused(peer: Connection, code: number, text: string, request: unknown): void {
    errorsTotal.inc({ code });
    const act = request !== null && typeof request === 'object' ? (request as { act?: unknown }).act : undefined;
    let kind: 'rate limited' | 'sign-in refused' | 'bad frame';
    if (code === Code.RATE_LIMITED) { this.counters.rateLimited++; kind = 'rate limited'; }
    else if (act === 'active') { this.counters.signInsRefused++; kind = 'sign-in refused'; }
    else if (!DECLINED.has(code)) { this.counters.badFrames++; kind = 'bad frame'; }
    else return;
    if (this.log.isLevelEnabled('debug')) this.log.debug({ conn: peer.id, remote: peer.remoteAddress, account: peer.account, code, why: text }, kind);
  }

  /** For /status: sign-ins by method and failures by reason, the verification queue, resume tokens. */
  view(): SignInView {
    const f = this.signatures.figures;
    return {
      byMethod: { ...this.figures.byMethod },
      failures: { ...this.figures.failures },
      handshakeTimeouts: this.figures.handshakeTimeouts,
      handshakeMs: this.opts.handshakeMs,
      verifier: this.signatures.impl ?? null,
      verifyThreads: this.signatures.threads,
      queue: { waiting: this.signatures.waiting, max: this.opts.queue, refusedFull: f.refusedFull },
      verifyWait: { checked: f.checked, avgMs: f.checked > 0 ? Math.round((f.waitMsTotal / f.checked) * 1000) / 1000 : 0, maxMs: Math.round(f.waitMsMax * 1000) / 1000 },
      resume: this.sessions?.stats() ?? null,
    };
  }

  close(): Promise<void> { return this.signatures.close(); }

  private get live(): Sessions {
    if (!this.sessions) throw new Error('node not started');
    return this.sessions;
  }
}
