/**
 * A binary min-heap by offset, for merging ordered sources (a backlog's conversations, a cluster
 * backlog's nodes): the source with the smallest next offset is on top. Only the top's key ever
 * changes (it was taken from), so `topChanged` sifts it down; the rest never move on their own.
 */
export class OffsetHeap<T> {
  private readonly a: T[] = [];

  constructor(private readonly key: (t: T) => number) {}

  get size(): number { return this.a.length; }

  top(): T | undefined { return this.a[0]; }

  /** Every item, in no particular order. */
  items(): readonly T[] { return this.a; }

  push(t: T): void {
    const a = this.a;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.key(a[p]!) <= this.key(a[i]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }

  /** Removes the top. */
  pop(): T | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      this.topChanged();
    }
    return top;
  }

  /** The top's key grew: it moves down to its place. */
  topChanged(): void {
    const a = this.a;
    const n = a.length;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.key(a[l]!) < this.key(a[m]!)) m = l;
      if (r < n && this.key(a[r]!) < this.key(a[m]!)) m = r;
      if (m === i) return;
      [a[m], a[i]] = [a[i]!, a[m]!];
      i = m;
    }
  }
}
