/**
 * docs/testing.md shows the example suites of examples/testing/ in full. Each code block
 * right after a `<!-- file: PATH -->` line must be that file, word for word, so the doc
 * cannot drift from the code CI runs (.ci/run runs the suites themselves).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOC = 'docs/testing.md';
const SHOWN = [
  'examples/testing/package.json',
  'examples/testing/node-test/faults.test.mjs',
  'examples/testing/jest/faults.test.mjs',
  'examples/testing/vitest.config.mjs',
  'examples/testing/vitest/faults.test.ts',
];

/** fileBlocks: each `<!-- file: PATH -->` of the markdown and the fenced block after it. */
function fileBlocks(markdown: string): Map<string, string> {
  const blocks = new Map<string, string>();
  const marker = /^<!-- file: (\S+) -->\n\n```[a-z]*\n([\s\S]*?)^```$/gm;
  for (const match of markdown.matchAll(marker)) {
    const [, path, body] = match;
    if (path === undefined || body === undefined) continue;
    assert.ok(!blocks.has(path), `${DOC} shows ${path} twice`);
    blocks.set(path, body);
  }
  return blocks;
}

test('docs/testing.md shows each example suite file exactly as it is', () => {
  const blocks = fileBlocks(readFileSync(`${ROOT}${DOC}`, 'utf8'));
  assert.deepEqual([...blocks.keys()].sort(), [...SHOWN].sort());
  for (const [path, body] of blocks) {
    assert.equal(body, readFileSync(`${ROOT}${path}`, 'utf8'), `${DOC}: the block of ${path}`);
  }
});

test('a file marker with no code block after it is not taken for one', () => {
  const blocks = fileBlocks(
    '<!-- file: a.js -->\n\ntext\n\n<!-- file: b.js -->\n\n```js\nx\n```\n',
  );
  assert.deepEqual([...blocks], [['b.js', 'x\n']]);
});
