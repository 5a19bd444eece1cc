/**
 * A `unix:` listen path that is taken: only a socket file that nobody answers on is
 * removed (removeStaleSocket). A regular file or a directory is left alone and the
 * listen fails with one line that names the address, from the library and the CLI.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { errorCode } from '../src/errors.js';
import { createProxy } from '../src/index.js';
import { removeStaleSocket } from '../src/unix-socket.js';
import { runCli } from './helpers/cli.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-unix-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * staleSocket leaves a socket file at `path` that nothing accepts on: a server that
 * is closed without removing its file (a process that died does the same).
 */
async function staleSocket(path: string): Promise<void> {
  const server = createServer();
  server.listen(path);
  await once(server, 'listening');
  // libuv removes the file on close(); a dead process would not. Move the file aside
  // while the server closes, then put it back: a socket file nobody accepts on.
  const aside = `${path}.aside`;
  renameSync(path, aside);
  await new Promise((resolve) => server.close(resolve));
  renameSync(aside, path);
}

async function liveSocket(t: TestContext, path: string): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  server.listen(path);
  await once(server, 'listening');
  t.after(() => server.close());
  return server;
}

test('removeStaleSocket removes a socket file nobody accepts on', async (t) => {
  const path = join(tempDir(t), 'stale.sock');
  await staleSocket(path);
  assert.ok(existsSync(path));
  assert.equal(await removeStaleSocket(path), true);
  assert.ok(!existsSync(path));
});

test('removeStaleSocket leaves a socket that a server answers on', async (t) => {
  const path = join(tempDir(t), 'live.sock');
  await liveSocket(t, path);
  assert.equal(await removeStaleSocket(path), false);
  assert.ok(existsSync(path));
});

test('removeStaleSocket never removes a regular file or a directory', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'mine');
  const sub = join(dir, 'sub');
  mkdirSync(sub);
  for (const path of [file, sub]) {
    await assert.rejects(removeStaleSocket(path), (err) => errorCode(err) === 'ENOTSOCK');
  }
  assert.equal(readFileSync(file, 'utf8'), 'mine');
  assert.ok(existsSync(sub));
});

test('removeStaleSocket says a path that is gone is free', async (t) => {
  assert.equal(await removeStaleSocket(join(tempDir(t), 'none.sock')), true);
});

test('listen on a unix: path that is a regular file or a directory fails with one clear error and keeps it', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'mine');
  const sub = join(dir, 'sub');
  mkdirSync(sub);
  for (const path of [file, sub]) {
    const proxy = createProxy({ listen: `unix:${path}`, targets: ['127.0.0.1:9'] });
    await assert.rejects(proxy.listen(), (err: Error) => {
      assert.equal(errorCode(err), 'PROXY_ERR_LISTEN');
      assert.equal(err.message, `listen unix:${path}: exists and is not a socket`);
      return true;
    });
    await proxy.close({ graceful: false });
  }
  assert.equal(readFileSync(file, 'utf8'), 'mine');
  assert.ok(existsSync(sub));
});

test('listen on a stale unix: socket replaces it', async (t) => {
  const path = join(tempDir(t), 'p.sock');
  await staleSocket(path);
  const proxy = createProxy({ listen: `unix:${path}`, targets: ['127.0.0.1:9'] });
  t.after(() => proxy.close({ graceful: false }));
  await proxy.listen();
  assert.equal(await removeStaleSocket(path), false, 'the proxy answers on it now');
});

test('the CLI refuses a unix: listen path that is a file or a directory: exit 1, one line, still there', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'mine');
  const sub = join(dir, 'sub');
  mkdirSync(sub);
  for (const path of [file, sub]) {
    const result = await runCli(t, ['--listen', `unix:${path}`, '--target', '127.0.0.1:9']);
    assert.equal(result.status, 1);
    assert.equal(result.stderr, `l4proxy: listen unix:${path}: exists and is not a socket\n`);
  }
  assert.equal(readFileSync(file, 'utf8'), 'mine');
  assert.ok(existsSync(sub));
});
