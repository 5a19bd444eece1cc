/**
 * Imports flow one way (docs/design.md, issue #10): no module of src/ depends on
 * itself through others. The test reads every relative import of src/**\/*.ts
 * (`import ... from`, `export ... from`, `import './x.js'` and `import('./x.js')`) and
 * looks for a cycle with a depth-first search.
 *
 * Type-only imports count too. They vanish from the JavaScript, so they cannot make a
 * module see another half-loaded; but they are still a dependency of meaning, and the
 * cycles the review found (index.ts ↔ admin/*, cluster.ts ↔ cluster-view.ts) were
 * type-only: a type belongs to the module that defines it, and its users import it
 * from there.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

// A relative specifier after `from`, after a bare `import`, or inside `import(...)`.
const IMPORT = /(?:\bfrom\s+|^\s*import\s+|\bimport\s*\(\s*)'(\.{1,2}\/[^']+)\.js'/gm;

/** importGraph maps each module of `root` (path relative to it) to the modules it imports. */
export function importGraph(root: string): Map<string, string[]> {
  const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) =>
    f.endsWith('.ts'),
  );
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    const imports = [...text.matchAll(IMPORT)].map((m) =>
      normalize(join(dirname(file), `${m[1]}.ts`)),
    );
    graph.set(file, [...new Set(imports)]);
  }
  return graph;
}

/** findCycles returns each cycle met by a depth-first search, as `a -> b -> a`. */
export function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const cycles: string[] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (node: string): void => {
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const at = path.indexOf(next);
      if (at >= 0) cycles.push([...path.slice(at), next].join(' -> '));
      else if (!done.has(next)) visit(next);
    }
    path.pop();
    done.add(node);
  };
  for (const node of [...graph.keys()].sort()) if (!done.has(node)) visit(node);
  return cycles;
}

test('the cycle finder sees a cycle, also one through a type-only or dynamic import', () => {
  const graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts']],
  ]);
  assert.deepEqual(findCycles(graph), ['a.ts -> b.ts -> c.ts -> a.ts']);
  assert.deepEqual(findCycles(new Map([['a.ts', ['b.ts']]])), []);
  const lines = [
    "import type { A } from './a.js';",
    "export { B } from '../b.js';",
    "import './c.js';",
    "const d = await import('./d.js');",
    "import { x } from 'node:net';",
  ].join('\n');
  assert.deepEqual(
    [...lines.matchAll(IMPORT)].map((m) => m[1]),
    ['./a', '../b', './c', './d'],
  );
});

test('no module of src/ imports itself through others', () => {
  const graph = importGraph(SRC);
  assert.ok(graph.has('index.ts') && graph.has(join('admin', 'server.ts')), 'src/ not read');
  assert.ok((graph.get('index.ts') ?? []).length > 0, 'no import of index.ts was read');
  assert.deepEqual(findCycles(graph), []);
});
