import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { test } from 'node:test';
import {
  assignListenFds,
  checkSocketFd,
  encodeWorkerFds,
  type PassedFd,
  takeListenFds,
  takeWorkerFds,
  WORKER_FDS_ENV,
} from '../src/socket-activation.js';

function fds(...names: string[]): PassedFd[] {
  return names.map((name, i) => ({ fd: 3 + i, name }));
}

test('takeListenFds reads the descriptors meant for this process and unsets the variables', () => {
  const env: NodeJS.ProcessEnv = {
    LISTEN_PID: '4242',
    LISTEN_FDS: '2',
    LISTEN_FDNAMES: 'web:db',
    OTHER: 'x',
  };
  assert.deepEqual(takeListenFds(env, 4242), {
    kind: 'fds',
    fds: [
      { fd: 3, name: 'web' },
      { fd: 4, name: 'db' },
    ],
  });
  assert.deepEqual(env, { OTHER: 'x' });
});

test('takeListenFds ignores variables meant for another process, and still unsets them', () => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: '1', LISTEN_FDS: '1' };
  const passed = takeListenFds(env, 4242);
  assert.equal(passed.kind, 'ignored');
  assert.match(passed.kind === 'ignored' ? passed.reason : '', /LISTEN_PID is 1, not this process/);
  assert.deepEqual(env, {});
  assert.equal(takeListenFds({ LISTEN_FDS: '1' }, 4242).kind, 'ignored');
  assert.deepEqual(takeListenFds({}, 4242), { kind: 'none' });
  assert.deepEqual(takeListenFds({ LISTEN_PID: '4242', LISTEN_FDS: '0' }, 4242), {
    kind: 'none',
  });
});

test('takeListenFds gives unnamed descriptors an empty name', () => {
  assert.deepEqual(takeListenFds({ LISTEN_PID: '7', LISTEN_FDS: '1' }, 7), {
    kind: 'fds',
    fds: [{ fd: 3, name: '' }],
  });
});

test('takeListenFds refuses malformed values with one line naming the variable', () => {
  const cases: [NodeJS.ProcessEnv, RegExp][] = [
    [{ LISTEN_PID: '7', LISTEN_FDS: 'two' }, /^socket activation: LISTEN_FDS: expected a whole/],
    [{ LISTEN_PID: 'me', LISTEN_FDS: '1' }, /^socket activation: LISTEN_PID: expected a process/],
    [
      { LISTEN_PID: '7', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web' },
      /^socket activation: LISTEN_FDNAMES has 1 name\(s\) for LISTEN_FDS=2/,
    ],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => takeListenFds(env, 7), { code: 'PROXY_ERR_INVALID_CONFIG', message });
  }
});

test('assignListenFds matches descriptors to listeners by name, whatever their order', () => {
  assert.deepEqual(
    assignListenFds(fds('db', 'web'), ['web', 'db']),
    new Map([
      ['db', 3],
      ['web', 4],
    ]),
  );
});

test('assignListenFds gives descriptors without a matching name to the other listeners in order', () => {
  assert.deepEqual(
    [...assignListenFds(fds('l4proxy.socket', 'l4proxy.socket'), ['a', 'b'])],
    [
      ['a', 3],
      ['b', 4],
    ],
  );
  // The named one first, the rest in order.
  assert.deepEqual(
    [...assignListenFds(fds('', 'c', ''), ['a', 'b', 'c'])],
    [
      ['c', 4],
      ['a', 3],
      ['b', 5],
    ],
  );
});

test('assignListenFds names the descriptor that has no listener, or the listener without one', () => {
  assert.throws(() => assignListenFds(fds('web', 'extra'), ['web']), {
    code: 'PROXY_ERR_INVALID_CONFIG',
    message:
      /^socket activation: fd 4 \(named "extra"\) has no listener \(LISTEN_FDS=2 for 1 listener\(s\)\)/,
  });
  assert.throws(() => assignListenFds(fds('web'), ['web', 'db']), {
    message: /^socket activation: listener db has no socket \(LISTEN_FDS=1 for 2 listener\(s\)\)/,
  });
  assert.throws(() => assignListenFds(fds('web', 'web'), ['web', 'db']), {
    message: /^socket activation: fd 3 and fd 4 are both named "web"/,
  });
});

test('checkSocketFd refuses a descriptor that is a file or is not open', (t) => {
  const fd = openSync(new URL(import.meta.url), 'r');
  t.after(() => closeSync(fd));
  assert.throws(() => checkSocketFd({ fd, name: 'web' }), {
    code: 'PROXY_ERR_INVALID_CONFIG',
    message: `socket activation: fd ${fd} (named "web") is not a socket`,
  });
  assert.throws(() => checkSocketFd({ fd: 100_000, name: '' }), {
    message: /^socket activation: fd 100000 is not open/,
  });
});

test('the matching reaches workers through the environment, and is unset there', () => {
  const env: NodeJS.ProcessEnv = {
    [WORKER_FDS_ENV]: encodeWorkerFds(
      new Map([
        ['a:b=c', 3],
        ['db', 4],
      ]),
    ),
  };
  assert.deepEqual(
    takeWorkerFds(env),
    new Map([
      ['a:b=c', 3],
      ['db', 4],
    ]),
  );
  assert.deepEqual(env, {});
  assert.equal(takeWorkerFds({}), undefined);
});
