/** Maps what lmdb-js and the file system throw onto `StoreError` codes the callers act on. */
import { StoreError } from '../ports';

export function toStoreError(e: unknown, what: string): StoreError {
  if (e instanceof StoreError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown } | null)?.code;
  // ENOSPC is errno 28 where lmdb-js passes the number; EDQUOT (122) is a full quota.
  if (code === 'ENOSPC' || code === 28 || code === 'EDQUOT' || code === 122 || /MDB_MAP_FULL|ENOSPC|No space left/i.test(msg)) {
    return new StoreError(`${what}: store full (${msg})`, 'full', { cause: e });
  }
  if (/MDB_CORRUPTED|MDB_PAGE_NOTFOUND|MDB_INVALID|MDB_VERSION_MISMATCH|MDB_BAD_TXN/.test(msg)) {
    return new StoreError(`${what}: store corrupt (${msg})`, 'corrupt', { cause: e });
  }
  if (/has been closed|already closed|Database is closed/i.test(msg)) {
    return new StoreError(`${what}: store is closed`, 'closed', { cause: e });
  }
  return new StoreError(`${what}: ${msg}`, 'io', { cause: e });
}
