/**
 * Records found damaged (a checksum that does not hold, a value that does not parse, a page LMDB
 * calls corrupt): counted for the store's stats (/status, /metrics) and logged once each, with
 * where they are (the conversation and offset, the state's address, the account). The reads that
 * met them skip them or answer them as damaged; nothing damaged is served as genuine.
 */
import { logger } from '../../log';

/** Places remembered so a record read again is neither counted nor logged again (bounded memory). */
const REMEMBERED = 10_000;

export class Damage {
  /** Damaged records found since the store was opened (each once while remembered). */
  count = 0;
  /** The last one found, for /status. */
  last: string | null = null;
  private readonly seen = new Set<string>();

  /** `where` names the record in the log line and in `last`; `fields` are its parts for the log. */
  found(db: string, where: string, fields: Record<string, unknown>): void {
    const id = `${db} ${where}`;
    if (this.seen.has(id)) return;
    if (this.seen.size >= REMEMBERED) this.seen.clear();
    this.seen.add(id);
    this.count++;
    this.last = id;
    logger({ mod: 'lmdb-store' }).error({ db, ...fields, damaged: this.count }, 'stored record is damaged (its checksum does not hold): it is not served; run the store check and restore from a backup (docs/operations.md)');
  }
}
