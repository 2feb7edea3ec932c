/**
 * Backups of a running node: an online copy of the data directory cut at one instant of the store,
 * into `dest` or a new directory under the backup root; one made directly under the root prunes the
 * root's IMGC backups beyond --backups-keep.
 */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { backupRoot, type Settings } from '../config';
import type { Logger } from '../log';
import { backupDataDir, listBackups, pruneBackups, type BackupResult } from '../store/backup';
import type { Store } from '../store/ports';

export async function backupNow(settings: Settings, store: Store, dest: string | undefined, log: Logger): Promise<BackupResult & { dest: string; pruned: string[] }> {
  const root = resolve(backupRoot(settings));
  const target = resolve(dest ?? join(root, `imgc-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const r = await backupDataDir(settings.data, target, { store, log });
  let pruned: string[] = [];
  if (existsSync(root) && realpathSync(dirname(target)) === realpathSync(root)) {
    pruned = pruneBackups(root, settings.backupsKeep, { protect: [settings.data, target], log });
  }
  return { ...r, dest: target, pruned };
}

/** For /status: the backup root and what it holds. */
export function backupsView(settings: Settings): { root: string; keep: number; kept: number } {
  const root = backupRoot(settings);
  return { root, keep: settings.backupsKeep, kept: listBackups(root).length };
}
