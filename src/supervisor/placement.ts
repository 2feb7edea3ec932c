/**
 * Where an actor lives: its address hashes (FNV-1a, stable across runs and machines) to one of a
 * fixed number of storage partitions, and a partition to a worker thread. Changing the number of
 * worker threads moves partitions between threads, never actors between partitions.
 */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export const groupAddress = (id: string): string => `group:${id}`;
export const inboxAddress = (account: string): string => `inbox:${account}`;

export function partitionOf(address: string, partitions: number): number {
  return fnv1a(address) % partitions;
}

export function workerOfPartition(partition: number, workers: number): number {
  return partition % workers;
}

export function workerOf(address: string, partitions: number, workers: number): number {
  return workerOfPartition(partitionOf(address, partitions), workers);
}
