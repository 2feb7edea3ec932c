/**
 * Live instruments observed where the work happens (prom-client), in one registry that /metrics
 * merges with the figures of the status snapshot. This module imports nothing of the service, so
 * actors and the supervisor may use it without importing the status server.
 *
 * Each instrument is observed at most once per request or per store turn, never per recipient:
 * one `observe` costs well under a microsecond (bench/metrics-cost.ts).
 */
import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

export const instruments = new Registry();

/** Seconds since `start`, a `performance.now()` reading. */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

export const now = (): number => performance.now();

/** One store turn: from `store.flush()` called to the records durable (resolved). */
export const storeFlushSeconds = new Histogram({
  name: 'imgc_store_flush_seconds',
  help: 'Time from a store flush requested (once per delivery turn that wrote) to its records durable, seconds.',
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [instruments],
});

/** A post that asked for an acknowledgement (`mid` or `callback`): from its arrival at the delivery actor to the acknowledgement written to the sender. */
export const deliveryLatencySeconds = new Histogram({
  name: 'imgc_delivery_latency_seconds',
  help: 'Time from a post\'s arrival at the delivery actor to its durable acknowledgement written to the sender (posts with mid or callback), seconds.',
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [instruments],
});

/** A sign-in that succeeded: from `active` received to the Welcome written. */
export const signinSeconds = new Histogram({
  name: 'imgc_signin_seconds',
  help: 'Time from "active" received to the Welcome sent, by method (sig, resume, open), seconds; signature checks included.',
  labelNames: ['method'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [instruments],
});

/** Error frames answered to clients, by protocol code. */
export const errorsTotal = new Counter({
  name: 'imgc_errors_total',
  help: 'Error frames sent to clients in answer to a frame (bad frames, refused sign-ins, rate limits, requests before sign-in, store full), by code.',
  labelNames: ['code'] as const,
  registers: [instruments],
});

let processMetrics = false;

/** prom-client's default process and Node figures, named `imgc_process_*` and `imgc_nodejs_*`; once per process. */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: instruments, prefix: 'imgc_' });
}
