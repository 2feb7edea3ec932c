/**
 * `npm run check -- [--data DIR]`: walks the whole store of a data directory and reports damaged
 * records (docs/operations.md, "Checking the store"). Read-only; safe while the service runs.
 *
 * Exit 0: every record verified. Exit 1: damage found, each record named (conversation and
 * offset, state address, account). Exit 2: the store could not be checked (none there, the format
 * before checksums, a usage mistake); one line says why.
 */
import { checkStore, CheckRefused, type CheckReport } from '../store/lmdb/check';
import { toolArgs } from './args';

const USAGE = 'usage: npm run check -- [--data DIR]   (DIR defaults to ./backup)';
/** Damaged records listed one per line; past this, a count. */
const LISTED = 200;

function parseArgs(argv: string[]): { data: string } | string {
  return toolArgs(argv, USAGE, (a) => `unexpected argument ${a}; ${USAGE}`);
}

function summary(r: CheckReport): string[] {
  const lines = r.damaged.slice(0, LISTED).map((d) => `damaged: ${d.db} ${d.where}`);
  if (r.damaged.length > LISTED) lines.push(`… and ${r.damaged.length - LISTED} more damaged records`);
  for (const u of r.unreadable) lines.push(`unreadable: ${u.db}: ${u.error}`);
  const bad = r.damaged.length + r.unreadable.length;
  lines.push(bad === 0
    ? `store ${r.store}: ${r.checked} records checked, no damage`
    : `store ${r.store}: ${r.checked} records checked, ${r.damaged.length} damaged, ${r.unreadable.length} databases unreadable; restore from a backup (docs/operations.md, Backups)`);
  return lines;
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  if (typeof args === 'string') {
    process.stderr.write(`${args}\n`);
    return 2;
  }
  let report: CheckReport;
  try {
    report = checkStore(args.data);
  } catch (e) {
    const why = e instanceof CheckRefused ? e.message : `the store in ${args.data} could not be opened: ${e instanceof Error ? e.message : String(e)}`;
    process.stderr.write(`check: ${why}\n`);
    return 2;
  }
  process.stdout.write(`${summary(report).join('\n')}\n`);
  return report.damaged.length + report.unreadable.length === 0 ? 0 : 1;
}

process.exitCode = main();
