/**
 * The status server's bearer token. Unless `--status-token` gives one (or `none`, which turns
 * authentication off for a trusted setup), the token is generated at first start into
 * `<data>/status-token` (mode 0600, the directory created 0700) and reused on later starts. The
 * token itself is logged once, at info, when the file is created; later starts log only its path.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeDirs } from '../files';
import type { Logger } from '../log';

/** The file name of the generated token inside the data directory. */
export const STATUS_TOKEN_FILE = 'status-token';

/** The `--status-token` value that turns authentication off. */
export const STATUS_TOKEN_NONE = 'none';

export interface ResolvedToken {
  /** The token to require; undefined: no authentication (`--status-token none`). */
  token: string | undefined;
  /** Where the token was read from or written to; undefined when given as a setting or off. */
  file: string | undefined;
  /** The file was written by this call. */
  created: boolean;
}

/** The token for the status server from the setting and the data directory. */
export function resolveStatusToken(setting: string | undefined, dataDir: string, log: Logger): ResolvedToken {
  if (setting === STATUS_TOKEN_NONE) {
    log.warn('status server authentication is off (--status-token none): anyone who reaches the status port can read figures and write backups');
    return { token: undefined, file: undefined, created: false };
  }
  if (setting !== undefined) return { token: setting, file: undefined, created: false };
  const file = path.join(dataDir, STATUS_TOKEN_FILE);
  const existing = readTokenFile(file, log);
  if (existing !== undefined) {
    log.info({ file }, 'status token read from the data directory');
    return { token: existing, file, created: false };
  }
  makeDirs(dataDir);
  const token = randomBytes(32).toString('base64url');
  // 'wx': never through an existing file or symlink; the mode is set at creation.
  fs.writeFileSync(file, token + '\n', { flag: 'wx', mode: 0o600 });
  fs.chmodSync(file, 0o600);
  log.info({ file, token }, 'status token created (this line is the only one that shows it; it stays in the file)');
  return { token, file, created: true };
}

/** The token in `file`, or undefined when there is none yet; a file that is not a regular file is refused. */
function readTokenFile(file: string, log: Logger): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!st.isFile()) throw new Error(`${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    fs.chmodSync(file, 0o600);
    log.warn({ file, mode: (st.mode & 0o777).toString(8) }, 'status token file was readable by others; made 0600');
  }
  const token = fs.readFileSync(file, 'utf8').trim();
  if (!/^\S+$/.test(token)) throw new Error(`${file} does not hold a token (one word)`);
  return token;
}
