/**
 * Work done once per turn of the event loop: however often it is asked for within a turn, it runs
 * once, in a setImmediate (not a microtask: everything the sockets delivered in this I/O phase
 * joins it). Mailboxes, ledger entries and node parcels are batched this way.
 */
export class EndOfTurn {
  private scheduled = false;

  constructor(private readonly run: () => void) {}

  /** Runs `run` at the end of this turn (once, whatever the number of requests). */
  request(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.run();
    });
  }

  /** A run is asked for and has not happened yet. */
  get pending(): boolean { return this.scheduled; }
}
