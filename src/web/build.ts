/**
 * Builds the demo page into dist/web: src/web/app.ts (with the SDK and the key code) bundled by
 * esbuild for browsers, and index.html. Run by `npm run build` after tsc.
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..', '..', '..');
const out = join(root, 'dist', 'web');

async function main(): Promise<void> {
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(root, 'src', 'web', 'app.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    outfile: join(out, 'app.js'),
    logLevel: 'warning',
  });
  copyFileSync(join(root, 'src', 'web', 'index.html'), join(out, 'index.html'));
}

main().catch((e: unknown) => { process.stderr.write(`web build failed: ${String(e)}\n`); process.exit(1); });
