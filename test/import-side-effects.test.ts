/**
 * No side effects on import (issue #10): a library user who imports the built package
 * and never starts a proxy gets no 'exit' handler (src/log.ts) and no probe socket
 * (src/read-buffer.ts). The import runs in a fresh node process, which prints what
 * it holds afterwards. Needs `npm run build` (it imports dist/index.js).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const INDEX = new URL('../dist/index.js', import.meta.url).href;

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
// evaluated, Node holds an 'exit' listener of its own. The child's stdout and stderr are
// files, not pipes: Node itself may open its stderr stream during an import (Node 24
// does, when `node:http` is imported as a module), and a stream on a file is neither a
// net.Socket nor a pipe handle. Sockets made for stdio are left out of the count all
// the same (a terminal, say).
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
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-import-'));
  try {
    const [out, err] = [join(dir, 'out'), join(dir, 'err')];
    const fds = [openSync(out, 'w'), openSync(err, 'w')] as const;
    const child = spawn(process.execPath, args, { stdio: ['ignore', ...fds], timeout: 20_000 });
    for (const fd of fds) closeSync(fd);
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    const stderr = readFileSync(err, 'utf8');
    if (stderr !== '') process.stderr.write(`the importing process printed to stderr:\n${stderr}`);
    assert.equal(code, 0, `the importing process exited with ${code ?? signal}`);
    return JSON.parse(readFileSync(out, 'utf8')) as Held;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
