/**
 * Cluster mode: a view of the replica whose actor-state writes also go into the ledger, for the
 * parts of the node that write state directly (read receipts). The write shows here at once and
 * reaches every replica, this one included, when the ledger applies it.
 */
import type { ActorStates, Store } from '../store/ports';
import type { Op } from './entry';

export function publishingStates(store: Store, publish: (ops: Op[]) => void): Store {
  const states: ActorStates = {
    get: (address) => store.states.get(address),
    put: (address, state) => {
      store.states.put(address, state);
      publish([{ t: 'state', state: { t: 'state', address, state } }]);
    },
    list: (prefix, after, limit) => store.states.list(prefix, after, limit),
  };
  return new Proxy(store, { get: (target, key) => (key === 'states' ? states : Reflect.get(target, key, target) as unknown) });
}
