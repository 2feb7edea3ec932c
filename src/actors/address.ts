/** Actor addresses: what a message names to reach an actor, wherever it lives. */
import { partitionOf } from '../hash';
export const groupAddress = (id: string): string => `group:${id}`;

/** The verification actor's address: one book of registrations for the whole service. */
export const VERIFY_ADDRESS = 'verify:book';

/**
 * The partition whose owner stores a conversation's records (cluster mode): a group's log lives with
 * its group actor (so the actor's decisions and the records they make have one owner); a direct pair
 * and an account's own log hash by their id.
 */
export function convPartition(conv: string, partitions: number): number {
  return partitionOf(conv.startsWith('g:') ? groupAddress(conv.slice(2)) : conv, partitions);
}
