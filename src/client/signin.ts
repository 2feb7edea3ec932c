/**
 * Signing in on each new socket: `active` with the resume token when there is one, else the
 * signer's signature of the spam (open mode: the account alone). A refused token is dropped and
 * the signature sent at once; a busy server (45003/41401) is asked again after its hint, with
 * jitter; any other refusal is final. Apart from the client so that the sign-in and the resume
 * token it keeps are in one place.
 */
import { Code } from '../protocol/codes.js';
import { ImgcError } from './errors.js';
import { jittered } from './random.js';
import { notExecuted, type Refusal } from './requests.js';
import type { SignFn } from './signer.js';
import type { Transport } from './transport.js';
import type { Request } from './types.js';

/** What the sign-in needs of the client. */
export interface SignInHost {
  readonly account: string;
  /** Enters the state `signing-in`. */
  signingIn(): void;
  /** Whether the state is still `signing-in`. */
  isSigningIn(): boolean;
  /** Refused for good: report it and close. */
  fail(e: ImgcError): void;
}

export class SignIn {
  /**
   * `sign`: the signer (none in open mode); `token`: a resume token kept from an earlier session.
   */
  constructor(
    private readonly sign: SignFn | undefined,
    public token: string | undefined,
    private readonly transport: Transport,
    private readonly host: SignInHost,
  ) {}

  /** Sends `active` on the current socket: with the resume token if `useResume` and there is one, else signed. */
  async start(useResume: boolean): Promise<void> {
    const t = this.transport;
    const ws = t.socket;
    this.host.signingIn();
    const r: Request = { cat: 'chat', act: 'active', acc: this.host.account, callback: 'active' };
    if (this.sign && useResume && this.token !== undefined) r.resume = this.token;
    else if (this.sign) {
      const spam = t.spam!;
      try {
        r.sig = await this.sign(spam);
      } catch (e) {
        this.host.fail(new ImgcError(Code.BAD_SIGNATURE, `the signer failed: ${(e as Error).message}`));
        return;
      }
      if (t.socket !== ws || t.spam !== spam) return; // the socket changed meanwhile
    }
    t.send(r);
  }

  /** The server refused the sign-in `req`. */
  refused(f: Refusal, req: Request): void {
    if (f.code === Code.BAD_SIGNATURE && req.resume !== undefined) {
      // The token was refused (expired, revoked, another server's key): sign with the signer.
      this.token = undefined;
      void this.start(false);
      return;
    }
    if (notExecuted(f)) return this.later(req.resume !== undefined, f.retryAfterMs);
    this.host.fail(ImgcError.fromFrame(f));
  }

  /** Tries again on the same socket after the server's hint, if still signing in on it. */
  private later(useResume: boolean, retryAfterMs: number | undefined): void {
    const ws = this.transport.socket;
    const again = (): void => { if (this.transport.socket === ws && this.host.isSigningIn()) void this.start(useResume); };
    setTimeout(again, jittered(2 * (retryAfterMs ?? 500)));
  }
}
