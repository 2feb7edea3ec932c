/**
 * The data directory layout and the placement of actors into partitions.
 *
 *   <data>/meta.json        {"format":"imgc-store","version":1,"partitions":P,"createdAt":<ms>}
 *   <data>/p00/ … p<P-1>/   one directory per partition (snapshots + journal segments)
 *   <data>/*                other top-level files belong to other components (keys, config, …)
 *
 * P is fixed when the directory is created: an actor's partition is a hash of its address modulo
 * P, so opening the same files with another P would look actors up in the wrong partitions.
 * A mismatch is therefore refused with a clear error instead of silently misplacing state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../../store/fsutil';
import { partitionOf } from '../../hash';

export { fnv1a32, stableHash32, partitionOf } from '../../hash';

export const STORE_FORMAT = 'imgc-store';
export const STORE_VERSION = 1;
export const DEFAULT_PARTITIONS = 16;
export const META_FILE = 'meta.json';

export interface StoreMeta {
  format: typeof STORE_FORMAT;
  version: number;
  partitions: number;
  createdAt: number;
}

export class LayoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayoutError';
  }
}

/** `<data>/p<NN>`: two digits at least, so listings sort by number for P <= 100. */
export function partitionDir(dataDir: string, partition: number): string {
  return path.join(dataDir, `p${String(partition).padStart(2, '0')}`);
}

/** meta.json of `dataDir`, or null when there is none. Throws LayoutError when it is not ours. */
export function readMeta(dataDir: string): StoreMeta | null {
  const file = path.join(dataDir, META_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let meta: Partial<StoreMeta>;
  try {
    meta = JSON.parse(text) as Partial<StoreMeta>;
  } catch {
    throw new LayoutError(`${file} is not JSON`);
  }
  if (meta === null || typeof meta !== 'object' || meta.format !== STORE_FORMAT) throw new LayoutError(`${file} is not an IMGC store description`);
  if (meta.version !== STORE_VERSION) throw new LayoutError(`${file}: store format version ${String(meta.version)} is not supported (this build reads ${STORE_VERSION})`);
  if (!Number.isInteger(meta.partitions) || (meta.partitions as number) < 1) throw new LayoutError(`${file}: bad partition count ${String(meta.partitions)}`);
  return meta as StoreMeta;
}

/**
 * Creates the layout of `dataDir` at first start, or checks it at later ones. Call once from the
 * main thread before workers open partitions. Throws LayoutError when the directory was created
 * with another partition count: re-partitioning means moving every actor, which needs the actors'
 * own knowledge of their state and is not done implicitly.
 */
export function initDataDir(dataDir: string, partitions: number = DEFAULT_PARTITIONS): StoreMeta {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 4096) throw new LayoutError(`bad partition count ${partitions}`);
  fs.mkdirSync(dataDir, { recursive: true });
  const meta = readMeta(dataDir);
  if (meta !== null) {
    if (meta.partitions !== partitions) {
      throw new LayoutError(
        `data dir ${dataDir} holds ${meta.partitions} partitions but ${partitions} were configured; ` +
          `start with ${meta.partitions} partitions (re-partitioning an existing data dir is not supported)`,
      );
    }
    return meta;
  }
  // Partition directories without meta.json: not something this code wrote; do not guess P.
  const strays = fs.readdirSync(dataDir).filter((n) => /^p\d+$/.test(n));
  if (strays.length > 0) throw new LayoutError(`data dir ${dataDir} has partition directories but no ${META_FILE}; refusing to guess its layout`);
  const fresh: StoreMeta = { format: STORE_FORMAT, version: STORE_VERSION, partitions, createdAt: Date.now() };
  // meta.json first: a concurrent initialiser then never sees partition directories without it.
  writeFileAtomicSync(path.join(dataDir, META_FILE), `${JSON.stringify(fresh)}\n`);
  for (let p = 0; p < partitions; p++) fs.mkdirSync(partitionDir(dataDir, p), { recursive: true });
  return fresh;
}
