/**
 * `npm run backup -- DEST [--data DIR]`: consistent copy of a data dir, safe while the server runs.
 * The copy is itself a data dir: start the server with `--data DEST` to use it.
 */
import { logger } from '../log';
import { backupDataDir, BackupRefused } from '../store/backup';
import { toolArgs } from './args';

const USAGE = 'usage: npm run backup -- DEST [--data DIR]   (DIR defaults to ./backup)';

function parseArgs(argv: string[]): { dest: string; data: string } | string {
  let dest: string | undefined;
  const args = toolArgs(argv, USAGE, (a) => {
    if (a.startsWith('-')) return `unknown option ${a}`;
    if (dest !== undefined) return `unexpected argument ${a}`;
    dest = a;
    return undefined;
  });
  if (typeof args === 'string') return args;
  if (dest === undefined) return 'DEST is missing';
  return { dest, data: args.data };
}

async function main(): Promise<number> {
  const log = logger({ component: 'backup-tool' });
  const args = parseArgs(process.argv.slice(2));
  if (typeof args === 'string') {
    log.error({ usage: USAGE }, args);
    return 2;
  }
  try {
    const { files, bytes } = await backupDataDir(args.data, args.dest, { log });
    log.info({ data: args.data, dest: args.dest, files, bytes }, `backup done; start with --data ${args.dest}`);
    return 0;
  } catch (e) {
    // A destination to change is the operator's: one plain line, exit 2, as a bad argument.
    if (e instanceof BackupRefused) {
      log.error(e.message);
      return 2;
    }
    log.error({ err: e }, 'backup failed');
    return 1;
  }
}

void main().then((code) => {
  process.exitCode = code;
});
