/**
 * No side effects on import (issue #10): a library user who imports the built package
 * and never starts a proxy gets no 'exit' handler (src/log.ts) and no probe socket
 * (src/read-buffer.ts). The import runs in a fresh node process, which prints what
 * it holds afterwards. Needs `npm run build` (it imports dist/index.js).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const INDEX = new URL('../dist/index.js', import.meta.url).href;
const run = promisify(execFile);

/** Held is what a fresh process holds once dist/index.js is imported. */
interface Held {
  exitListeners: number;
  /** sockets is how many net.Socket objects were made, with or without a handle. */
  sockets: number;
  /** stacks says where each of those sockets was made. */
  stacks: string[];
  resources: string[];
}

// The child counts the net.Socket objects made during the import: node:net's Socket is
// replaced by a counting subclass, and the ESM bindings synced, before the import. A
// socket without a handle (the onread probe) shows in no list of active resources.
// Only dynamic imports and no top-level await: while the -e module is still being
// evaluated, Node holds an 'exit' listener of its own. Node's own stdio streams are
// net.Sockets too when stdio is a pipe (a warning printed to stderr makes one): they
// are not the package's, so they are left out of the count.
const CHILD = `
Promise.all([import('node:net'), import('node:module')]).then(([net, mod]) => {
  let sockets = 0;
  const stacks = [];
  const Original = net.default.Socket;
  net.default.Socket = class extends Original {
    constructor(...args) {
      super(...args);
      const stack = new Error('net.Socket made').stack;
      if (/createWritableStdioStream|getStdin/.test(stack)) return;
      sockets += 1;
      stacks.push(stack);
    }
  };
  mod.syncBuiltinESMExports();
  return import(process.argv[1]).then(async (lib) => {
    if (process.argv[2] === 'start') {
      const proxy = lib.createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9'] });
      await proxy.listen();
      await proxy.close({ graceful: false });
    }
    const exitListeners = process.listenerCount('exit');
    const resources = process.getActiveResourcesInfo();
    console.log(JSON.stringify({ exitListeners, sockets, stacks, resources }));
  });
});
`;

/** afterImport is what a fresh process holds after the import (and a proxy's start). */
async function afterImport(start = false): Promise<Held> {
  const args = ['--input-type=module', '-e', CHILD, INDEX, start ? 'start' : 'import'];
  const { stdout, stderr } = await run(process.execPath, args, {
    timeout: 20_000,
  });
  if (stderr !== '') process.stderr.write(`the importing process printed to stderr:\n${stderr}`);
  return JSON.parse(stdout) as Held;
}

test('importing the package adds no exit handler and makes no socket', async () => {
  const held = await afterImport();
  assert.equal(held.exitListeners, 0, 'an exit listener was added by the import');
  assert.equal(held.sockets, 0, `a net.Socket was made by the import:\n${held.stacks.join('\n')}`);
  const handles = held.resources.filter((r) => /TCP|Pipe|UDP/i.test(r));
  assert.deepEqual(handles, [], `socket handles after the import: ${held.resources.join(', ')}`);
});

test('a proxy started and closed after the import gets its exit flush and its probe', async () => {
  const held = await afterImport(true);
  assert.equal(held.exitListeners, 1, 'no exit flush once a proxy logs to stderr');
  // The onread probe and the listening server's socket at least.
  assert.ok(held.sockets >= 1, `sockets made: ${held.sockets}`);
});
