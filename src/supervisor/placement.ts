/**
 * Where an actor lives: its address hashes (stable across runs and machines, see hash.ts) to one
 * of a fixed number of partitions, and a partition to a worker thread. Changing the number of
 * worker threads moves partitions between threads, never actors between partitions.
 */
import { partitionOf } from '../hash';
import { groupAddress } from '../actors/address';

export { partitionOf, groupAddress };

export function workerOfPartition(partition: number, workers: number): number {
  return partition % workers;
}

export function workerOf(address: string, partitions: number, workers: number): number {
  return workerOfPartition(partitionOf(address, partitions), workers);
}
