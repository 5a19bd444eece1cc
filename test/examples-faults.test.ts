/**
 * examples/faults.test.mjs (docs/testing.md) runs against the BUILT package (`npm run
 * build` first; `npm test` does): it imports `l4proxy` by name, as a user's suite
 * would. Spawned as its own `node --test` process, ended by its PID if it hangs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { withTimeout } from './helpers/cli.js';

const EXAMPLE = fileURLToPath(new URL('../examples/faults.test.mjs', import.meta.url));

test('examples/faults.test.mjs passes against the built package', async (t) => {
  // Without NODE_TEST_CONTEXT, the child runs as a test runner of its own (not a subtest of this one).
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  delete env['NODE_TEST_CONTEXT'];
  const child = spawn(process.execPath, ['--test', '--test-reporter=tap', EXAMPLE], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  t.after(() => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid);
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [code] = await withTimeout(once(child, 'exit'), 30000, 'the example suite');
  assert.equal(code, 0, output);
  assert.match(output, /^# pass 4$/m, output);
  assert.match(output, /^# fail 0$/m, output);
});
