// The layering rule of CONTRIBUTING.md, checked over the import graph: a folder imports only the
// folders below it, and no two files import each other, directly or round a longer cycle. Dynamic
// `import()`s and `import('…')` types count like static imports, so a cycle cannot hide behind them.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Bottom to top; a folder may import its own layer's files and those of lower layers. */
const LAYERS: string[][] = [['datasets'], ['models'], ['perception'], ['fusion'], ['eval'], ['train', 'viewer'], ['cli', 'bench']];

const layerOf = new Map(LAYERS.flatMap((folders, i) => folders.map((f) => [f, i] as const)));

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'shipped' || e.name === 'node_modules' ? [] : sourceFiles(rel);
    return /\.(ts|js)$/.test(e.name) ? [rel] : [];
  });
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(['"])(\.[^'"]*)\1/gm;

/** file → the project files it imports (relative specifiers only). */
function importGraph(files: string[], read: (f: string) => string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets = [...read(file).matchAll(SPECIFIER)].map((m) => path.normalize(path.join(path.dirname(file), m[2])));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Imports that run up the table (or into a folder the table does not know). */
function upwardImports(graph: Map<string, string[]>): string[] {
  const bad: string[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf.get(file.split(path.sep)[0]);
    for (const t of targets) {
      const to = layerOf.get(t.split(path.sep)[0]);
      if (from === undefined || to === undefined) {
        if (!t.startsWith(`proto${path.sep}`)) bad.push(`${file} -> ${t} (folder not in the layer table)`);
      } else if (to > from) bad.push(`${file} -> ${t} (layer ${from} imports layer ${to})`);
    }
  }
  return bad;
}

/** Every import cycle between files, each as the files round it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const t of graph.get(f) ?? []) {
      if (!graph.has(t)) continue;
      if (state.get(t) === 'open') found.push([...stack.slice(stack.indexOf(t)), t]);
      else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  return found;
}

const projectGraph = () =>
  importGraph(
    LAYERS.flat().flatMap((d) => sourceFiles(d)),
    (f) => readFileSync(path.join(root, f), 'utf8'),
  );

describe('layers', () => {
  it('no folder imports a folder above it', () => {
    expect(upwardImports(projectGraph())).toEqual([]);
  });

  it('no file-level import cycle', () => {
    expect(cycles(projectGraph()).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('the check catches an upward import, a dynamic one and a cycle', () => {
    const files: Record<string, string> = {
      'datasets/a.ts': "import { b } from '../fusion/b.ts';",
      'fusion/b.ts': "const m = await import('../datasets/a.ts');",
      'models/c.ts': "export type T = import('../eval/d.ts').D;",
      'eval/d.ts': '',
    };
    const g = importGraph(Object.keys(files), (f) => files[f]);
    expect(upwardImports(g)).toEqual(['datasets/a.ts -> fusion/b.ts (layer 0 imports layer 3)', 'models/c.ts -> eval/d.ts (layer 1 imports layer 4)']);
    expect(cycles(g)).toEqual([['datasets/a.ts', 'fusion/b.ts', 'datasets/a.ts']]);
  });
});
