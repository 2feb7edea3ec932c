/**
 * `npm run bench:restart`: restart time with a large data directory. Its role moved to
 * bench/stored.ts (`npm run bench:stored`), which builds the directory through the conversation-log
 * store and times the start and a restart beside RSS, sign-in backlog and history latency; this
 * entry point runs it with the same flags. (The previous version of this script wrote the old
 * per-partition journal; that format is now read only by the migration.)
 *
 *   node dist/bench/restart.js [--messages N --conversations C …]   same flags as stored.js
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const r = spawnSync(process.execPath, [path.join(__dirname, 'stored.js'), ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
