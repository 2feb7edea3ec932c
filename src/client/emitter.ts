/** A small typed event emitter that runs in Node and in browsers alike (no node:events). */
type Listener = (...args: unknown[]) => void;

export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  private readonly listeners = new Map<keyof E, Set<Listener>>();

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof E>(event: K, fn: (...args: E[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) { set = new Set(); this.listeners.set(event, set); }
    set.add(fn as unknown as Listener);
    return () => this.off(event, fn);
  }

  /** Adds a listener called at most once. */
  once<K extends keyof E>(event: K, fn: (...args: E[K]) => void): () => void {
    const off = this.on(event, (...args: E[K]) => { off(); fn(...args); });
    return off;
  }

  off<K extends keyof E>(event: K, fn: (...args: E[K]) => void): void {
    this.listeners.get(event)?.delete(fn as unknown as Listener);
  }

  listenerCount<K extends keyof E>(event: K): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) fn(...(args as unknown[]));
  }
}
