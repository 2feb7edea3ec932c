/**
 * Where an actor lives: its address hashes (stable across runs and machines, see store/layout) to
 * one of a fixed number of storage partitions, and a partition to a worker thread. Changing the
 * number of worker threads moves partitions between threads, never actors between partitions.
 */
import { partitionOf } from '../store/layout';

export { partitionOf };

export const groupAddress = (id: string): string => `group:${id}`;
export const inboxAddress = (account: string): string => `inbox:${account}`;

export function workerOfPartition(partition: number, workers: number): number {
  return partition % workers;
}

export function workerOf(address: string, partitions: number, workers: number): number {
  return workerOfPartition(partitionOf(address, partitions), workers);
}
