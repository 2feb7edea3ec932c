/**
 * Latency samples and percentiles. Samples are kept exactly up to a cap, then by reservoir
 * sampling, so memory stays bounded however long a run is.
 */

const CAP = 2_000_000;

export class Latency {
  private buf = new Float64Array(65_536);
  private n = 0;
  /** Every sample offered, kept or not. */
  count = 0;
  max = 0;

  add(ms: number): void {
    this.count++;
    if (ms > this.max) this.max = ms;
    if (this.n < CAP) {
      if (this.n === this.buf.length) {
        const next = new Float64Array(Math.min(CAP, this.buf.length * 2));
        next.set(this.buf);
        this.buf = next;
      }
      this.buf[this.n++] = ms;
      return;
    }
    const j = Math.floor(Math.random() * this.count);
    if (j < CAP) this.buf[j] = ms;
  }

  /** Percentiles (0..100) in ms; NaN without samples. */
  percentiles(ps: number[]): number[] {
    if (this.n === 0) return ps.map(() => NaN);
    const s = this.buf.slice(0, this.n).sort();
    return ps.map((p) => s[Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1))]);
  }

  summary(): { p50: number; p99: number; p999: number; max: number; samples: number } {
    const [p50, p99, p999] = this.percentiles([50, 99, 99.9]);
    return { p50, p99, p999, max: this.count > 0 ? this.max : NaN, samples: this.count };
  }
}

/** Figures of one measured run: name → number, in the order they were set. */
export type Figures = Record<string, number>;

export interface RunResult {
  figures: Figures;
  notes: string[];
}

export function fmt(v: number | undefined | null): string {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100_000) return Math.round(v).toLocaleString('en-US');
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(2);
}
