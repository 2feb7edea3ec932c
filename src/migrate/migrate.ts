import type { Store } from '../store/ports';

/** Placeholder until the v1 migration lands. */
export async function migrateDataDir(_dataDir: string, _store: Store): Promise<void> {}
