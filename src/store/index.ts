/** The storage layer's public surface, for `import … from '../store'`. */
export { PartitionStore, StoreCorruptError, type PartitionOpenOptions, type PartitionRestore, type PartitionStats, type FsyncPolicy } from './partition';
export { Journal, type JournalOptions } from './journal';
export { type JournalRecord } from './record';
export { writeSnapshot, readSnapshot, loadNewestSnapshot, SnapshotCorruptError } from './snapshot';
export {
  DEFAULT_PARTITIONS, LayoutError, initDataDir, readMeta, partitionDir, partitionOf, fnv1a32, stableHash32, type StoreMeta,
} from './layout';
export {
  readLegacyBackup, parseLegacyBackup, legacyRowToFrame, isLegacyGroupId,
  type LegacyBackup, type LegacyGroup, type LegacyRow, type LegacyMessageRow, type LegacyNoticeRow, type LegacyFrame, type LegacySkipped,
} from './legacy';
export { backupDataDir, type BackupResult } from './backup';
