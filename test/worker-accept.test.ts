import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  parseWorkerAccept,
  probeReusePort,
  tcpListenOptions,
  useWorkerAccept,
} from '../src/worker-accept.js';

test('L4PROXY_WORKER_ACCEPT: unset or empty is the default; reuseport and handover are taken', () => {
  assert.equal(parseWorkerAccept({}), undefined);
  assert.equal(parseWorkerAccept({ L4PROXY_WORKER_ACCEPT: '' }), undefined);
  assert.equal(parseWorkerAccept({ L4PROXY_WORKER_ACCEPT: 'reuseport' }), 'reuseport');
  assert.equal(parseWorkerAccept({ L4PROXY_WORKER_ACCEPT: 'handover' }), 'handover');
});

test('any other L4PROXY_WORKER_ACCEPT is an error naming the variable and the value', () => {
  for (const value of ['REUSEPORT', 'on', ' handover']) {
    assert.throws(() => parseWorkerAccept({ L4PROXY_WORKER_ACCEPT: value }), {
      message: `L4PROXY_WORKER_ACCEPT: expected reuseport or handover, got ${JSON.stringify(value)}`,
    });
  }
});

test('the probe finds reusePort on Linux with Node.js 22.12 / 23.1 or later, and only there', async () => {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const expected =
    process.platform === 'linux' &&
    (major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12));
  assert.equal(await probeReusePort(), expected, `Node.js ${process.version}`);
});

test('a reuseport worker listens with reusePort and exclusive, except on port 0', (t) => {
  t.after(() => useWorkerAccept(undefined));
  assert.deepEqual(tcpListenOptions('127.0.0.1', 8080), { host: '127.0.0.1', port: 8080 });
  useWorkerAccept('reuseport');
  assert.deepEqual(tcpListenOptions('127.0.0.1', 8080), {
    host: '127.0.0.1',
    port: 8080,
    reusePort: true,
    exclusive: true,
  });
  assert.deepEqual(tcpListenOptions(undefined, 0), { host: undefined, port: 0 });
  useWorkerAccept('handover');
  assert.deepEqual(tcpListenOptions('::1', 8080), { host: '::1', port: 8080 });
});
