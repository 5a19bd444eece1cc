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
  resources: string[];
}

// The child counts the net.Socket objects made during the import: node:net's Socket is
// replaced by a counting subclass, and the ESM bindings synced, before the import. A
// socket without a handle (the onread probe) shows in no list of active resources.
// Only dynamic imports and no top-level await: while the -e module is still being
// evaluated, Node holds an 'exit' listener of its own.
const CHILD = `
Promise.all([import('node:net'), import('node:module')]).then(([net, mod]) => {
  let sockets = 0;
  const Original = net.default.Socket;
  net.default.Socket = class extends Original {
    constructor(...args) { super(...args); sockets += 1; }
  };
  mod.syncBuiltinESMExports();
  return import(process.argv[1]).then(() => {
    const exitListeners = process.listenerCount('exit');
    const resources = process.getActiveResourcesInfo();
    console.log(JSON.stringify({ exitListeners, sockets, resources }));
  });
});
`;

async function afterImport(): Promise<Held> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', CHILD, INDEX], {
    timeout: 20_000,
  });
  return JSON.parse(stdout) as Held;
}

test('importing the package adds no exit handler and makes no socket', async () => {
  const held = await afterImport();
  assert.equal(held.exitListeners, 0, 'an exit listener was added by the import');
  assert.equal(held.sockets, 0, 'a net.Socket was made by the import');
  const handles = held.resources.filter((r) => /TCP|Pipe|UDP/i.test(r));
  assert.deepEqual(handles, [], `socket handles after the import: ${held.resources.join(', ')}`);
});
