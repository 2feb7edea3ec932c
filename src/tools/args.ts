/** Argument parsing the operator tools share: `--data DIR` (default ./backup), `--help`, and the tool's own arguments. */

/**
 * Reads `--data DIR` or `--data=DIR` and `-h`/`--help` (answered with `usage`); every other
 * argument goes to `other`, which takes it (undefined) or says what is wrong with it. Returns the
 * data directory, or the one line to print.
 */
export function toolArgs(argv: readonly string[], usage: string, other: (arg: string) => string | undefined): { data: string } | string {
  let data = './backup';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--data') {
      const v = argv[++i];
      if (v === undefined) return '--data needs a directory';
      data = v;
    } else if (a.startsWith('--data=')) {
      data = a.slice('--data='.length);
    } else if (a === '-h' || a === '--help') {
      return usage;
    } else {
      const wrong = other(a);
      if (wrong !== undefined) return wrong;
    }
  }
  return { data };
}
