/**
 * The layout shows the architecture (docs/architecture.md): every import of src/ and bench/ points
 * down the layers, and no files import each other in a loop. Read from the sources themselves, so a
 * new upward import or cycle fails here before anyone has to draw the house.
 */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** The repository root (this file runs from dist/test). */
const ROOT = resolve(__dirname, '..', '..');

/** Each place's layer, the most specific prefix first; a file may import its own layer and those below. */
const LAYERS: Array<[string, number]> = [
  ['bench/', 9],
  ['src/main.ts', 8], ['src/cli/', 8], ['src/tools/', 8], ['src/web/', 8],
  ['src/supervisor/', 7],
  ['src/cluster/', 6],
  ['src/carrier/', 5],
  ['src/actors/', 4], ['src/migrate/', 4], ['src/client/', 4],
  ['src/chain/', 3],
  ['src/net/', 2], ['src/status/', 2], ['src/store/', 2], ['src/config.ts', 2], ['src/log-aggregate.ts', 2],
  ['src/protocol/', 1], ['src/log.ts', 1], ['src/hash.ts', 1], ['src/account-hashes.ts', 1], ['src/turn.ts', 1], ['src/files.ts', 1],
];

function layerOf(file: string): number {
  const hit = LAYERS.find(([prefix]) => file === prefix || file.startsWith(prefix));
  if (!hit) throw new Error(`${file} has no layer: add it to LAYERS and docs/architecture.md`);
  return hit[1];
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = `${dir}/${name}`;
    if (statSync(join(ROOT, path)).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** The files of this tree a source imports (relative specifiers, `require` and `import()` too; `import type` counts: a type is a dependency). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  const specifiers = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s+'(\.[^']+)'/g),
    ...text.matchAll(/\b(?:require|import)\('(\.[^']+)'\)/g),
  ];
  for (const m of specifiers) {
    const base = resolve(ROOT, dirname(file), m[1]!.replace(/\.js$/, ''));
    const target = [`${base}.ts`, join(base, 'index.ts')].find((p) => existsSync(p));
    if (target) out.push(relative(ROOT, target));
  }
  return out;
}

describe('layers: imports point down, without cycles', () => {
  const files = [...sources('src'), ...sources('bench')];
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it('reads the tree (a broken reader would pass everything)', () => {
    expect(files.length).to.be.greaterThan(100);
    expect(graph.get('src/supervisor/node.ts')).to.include('src/carrier/port.ts');
  });

  it('no import runs upward', () => {
    const upward: string[] = [];
    for (const [file, deps] of graph) {
      for (const dep of deps) if (layerOf(dep) > layerOf(file)) upward.push(`${file} -> ${dep}`);
    }
    expect(upward).to.deep.equal([]);
  });

  it('no files import each other in a loop', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      path.push(f);
      for (const d of graph.get(f) ?? []) {
        if (state.get(d) === 'open') cycles.push([...path.slice(path.indexOf(d)), d].join(' -> '));
        else if (!state.has(d)) visit(d);
      }
      path.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).to.deep.equal([]);
  });
});
