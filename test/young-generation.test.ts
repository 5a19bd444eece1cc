/**
 * The young generation (src/young-generation.ts): the command keeps V8's young
 * generation at its initial size, so that a burst of long-lived connections does not
 * leave it grown; node flags that size it win; a library import changes nothing.
 * The heap checks run in a fresh node process each (V8 flags are per process) and
 * need `npm run build` (they import dist/).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { startCli } from './helpers/cli.js';

const MODULE = new URL('../dist/young-generation.js', import.meta.url).href;
const INDEX = new URL('../dist/index.js', import.meta.url).href;

// The child optionally keeps the young generation small (or imports the library and
// starts a proxy), then allocates 40 MB of objects that all stay reachable, as the
// sockets of thousands of new connections do, and prints the young generation's size.
const CHILD = `
const [mode, moduleUrl, indexUrl] = process.argv.slice(1);
const v8 = await import('node:v8');
if (mode === 'keep') (await import(moduleUrl)).keepYoungGenerationSmall();
if (mode === 'library') {
  const { createProxy } = await import(indexUrl);
  const proxy = createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9'] });
  await proxy.listen();
  await proxy.close({ graceful: false });
}
const kept = [];
for (let i = 0; i < 400_000; i++) kept.push({ id: i, name: 'connection ' + i, ends: [i, i + 1] });
const young = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
console.log(JSON.stringify({ young: young.space_size, kept: kept.length }));
`;

async function youngGenerationAfterBurst(
  mode: 'keep' | 'default' | 'library',
  nodeArgs: readonly string[] = [],
): Promise<number> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--input-type=module', '-e', CHILD, mode, MODULE, INDEX],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  const [status] = (await once(child, 'exit')) as [number | null];
  assert.equal(status, 0, `the child exits 0 (${mode})`);
  const { young } = JSON.parse(out) as { young: number };
  return young;
}

test('kept small, the young generation stays at its initial size through a burst of survivors', async () => {
  const kept = await youngGenerationAfterBurst('keep');
  const grown = await youngGenerationAfterBurst('default');
  // 1 MiB per semi-space at the start on Node 20, 24 and 26 (2 MiB of new space).
  assert.ok(kept <= 4 * 1024 * 1024, `kept: ${kept} bytes`);
  // The control: without it, the same burst grows the young generation.
  assert.ok(grown >= 2 * kept, `grown ${grown} bytes against kept ${kept}`);
});

test('a library user keeps V8 as it was: creating a proxy does not fix the young generation', async () => {
  const kept = await youngGenerationAfterBurst('keep');
  const library = await youngGenerationAfterBurst('library');
  assert.ok(library >= 2 * kept, `library ${library} bytes against kept ${kept}`);
});

test('node flags that size the young generation win over the command', async () => {
  const { keepYoungGenerationSmall } = (await import(MODULE)) as {
    keepYoungGenerationSmall(execArgv: readonly string[], nodeOptions: string): boolean;
  };
  assert.equal(keepYoungGenerationSmall(['--max-semi-space-size=64'], ''), false);
  assert.equal(keepYoungGenerationSmall(['--max_semi_space_size', '64'], ''), false);
  assert.equal(keepYoungGenerationSmall([], '--inspect --semi-space-growth-factor=2'), false);
  assert.equal(keepYoungGenerationSmall([], '--min-semi-space-size=4'), false);
  // In a fresh process, a flag in node's arguments keeps the growth.
  const grown = await youngGenerationAfterBurst('keep', ['--semi-space-growth-factor=2']);
  const kept = await youngGenerationAfterBurst('keep');
  assert.ok(grown >= 2 * kept, `with the flag ${grown} bytes against kept ${kept}`);
});

test('the command keeps the young generation small, and says so at debug level', async (t) => {
  const cli = await startCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    '127.0.0.1:9',
    '--log-level',
    'debug',
  ]);
  assert.ok(
    cli.lines().some((line) => line.includes('young generation kept at its initial size')),
    cli.stderr(),
  );
});
