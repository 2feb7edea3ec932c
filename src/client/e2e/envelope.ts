/**
 * What an encrypted message looks like on the wire: the `msg` of an ordinary `chat` (direct or
 * group), an object the server stores and relays without reading it.
 *
 *   {"e2e":"mls/1","g":GROUP,"c":COMMIT?,"w":WELCOME?,"m":MESSAGE?}
 *
 * `g` is the MLS group (base64 of its id), `c` a commit to it, `w` the Welcome of the devices that
 * commit adds, `m` an application message; each is an MLS message in base64. A commit and the
 * message it was made for travel in one record, so no one sees one without the other.
 *
 * A record larger than the server takes (a Welcome carries the group's tree: about 600 bytes a
 * device) is sent as parts, each its own record, in order:
 *
 *   {"e2e":"mls/1","part":ID,"i":0,"n":3,"d":"…"}   the record's JSON, cut in n pieces
 *
 * The parts of one record come from one sender in one conversation in order (the log keeps a
 * sender's order), so reassembly needs no reordering; it is bounded (`Parts`).
 */
export const E2E_TAG = 'mls/1';

export interface Envelope { e2e: typeof E2E_TAG; g: string; c?: string; w?: string; m?: string }
export interface Part { e2e: typeof E2E_TAG; part: string; i: number; n: number; d: string }

/** Characters of a record's JSON per part: leaves room under the server's 64 KiB frame. */
export const PART_CHARS = 48 * 1024;
/** Parts of one record at most (about 3 MiB: a Welcome of some 5,000 devices). */
export const MAX_PARTS = 64;
/**
 * Records being reassembled at once, across conversations; the oldest is dropped beyond it. So a
 * sender that never finishes its parts holds at most 4 × MAX_PARTS × PART_CHARS (12 MiB) here.
 */
const MAX_OPEN = 4;

const isB64 = (v: unknown): boolean => v === undefined || typeof v === 'string';

export function isEnvelope(msg: unknown): msg is Envelope {
  const e = msg as Partial<Envelope> | null;
  return typeof e === 'object' && e !== null && e.e2e === E2E_TAG && typeof e.g === 'string' && isB64(e.c) && isB64(e.w) && isB64(e.m);
}

export function isPart(msg: unknown): msg is Part {
  const p = msg as Partial<Part> | null;
  return typeof p === 'object' && p !== null && p.e2e === E2E_TAG && typeof p.part === 'string' && Number.isInteger(p.i)
    && Number.isInteger(p.n) && p.n! > 1 && p.n! <= MAX_PARTS && p.i! >= 0 && p.i! < p.n! && typeof p.d === 'string';
}

/** Whether a `msg` is any record of ours (shown to no one as text). */
export const isE2E = (msg: unknown): boolean => isEnvelope(msg) || isPart(msg);

/** The records to post for `env`, in order: itself, or its parts. */
export function split(env: Envelope, id: string, partChars = PART_CHARS): Array<Envelope | Part> {
  const json = JSON.stringify(env);
  if (json.length <= partChars) return [env];
  const n = Math.ceil(json.length / partChars);
  if (n > MAX_PARTS) throw new RangeError(`an encrypted record of ${json.length} characters is more than ${MAX_PARTS} parts`);
  return Array.from({ length: n }, (_, i) => ({ e2e: E2E_TAG, part: id, i, n, d: json.slice(i * partChars, (i + 1) * partChars) }));
}

/**
 * Reassembles parts. Keyed by sender, conversation and id; a part out of order (something was
 * lost: retention, a device that joined mid-way) drops what was gathered. Bounded by MAX_OPEN
 * records of MAX_PARTS parts.
 */
export class Parts {
  private readonly open = new Map<string, string[]>();

  /** The whole record once its last part came; undefined meanwhile (or when it cannot be whole). */
  add(from: string, conv: string, p: Part): Envelope | undefined {
    const key = `${from}\n${conv}\n${p.part}`;
    const got = this.open.get(key) ?? [];
    if (got.length !== p.i) { this.open.delete(key); return undefined; }
    got.push(p.d);
    this.open.delete(key);
    if (got.length < p.n) {
      this.open.set(key, got);
      if (this.open.size > MAX_OPEN) this.open.delete(this.open.keys().next().value!);
      return undefined;
    }
    try {
      const env: unknown = JSON.parse(got.join(''));
      return isEnvelope(env) ? env : undefined;
    } catch { return undefined; }
  }
}
