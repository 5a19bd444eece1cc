/**
 * The `proxy` command end to end, as cli-contract.md describes it: the built CLI
 * (dist/cli.js) runs as a child process, and the tests check its exit status, its
 * stderr and what real clients on loopback see. Build first (`npm run build`).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { parseArgv } from '../../src/config/args.js';
import { type LogRecord, type RunningCli, runCli, startCli, withTimeout } from '../helpers/cli.js';
import {
  connectClient,
  echo,
  patternBytes,
  type RecordingClient,
  refusedTarget,
  startUpstream,
  waitFor,
} from '../helpers/net.js';
import { deadline } from '../helpers/time.js';

const LISTEN = '127.0.0.1:0';
/** A syntactically valid target; usage errors never get as far as dialing it. */
const SOME_TARGET = '127.0.0.1:9';

/** Client is a RecordingClient closed after the test, that knows its own port and whether it closed. */
interface Client extends RecordingClient {
  /** localPort resolves once connected (rejects if it closed first). */
  localPort: Promise<number>;
  isClosed: boolean;
}

function openClient(t: TestContext, port: number, host = '127.0.0.1'): Client {
  const recording = connectClient(port, host);
  const client = Object.assign(recording, {
    isClosed: false,
    localPort: new Promise<number>((resolve, reject) => {
      recording.socket.once('connect', () => resolve(recording.socket.localPort ?? 0));
      recording.socket.once('close', () => reject(new Error('closed before connecting')));
    }),
  });
  client.localPort.catch(() => {});
  recording.socket.on('close', () => {
    client.isClosed = true;
  });
  t.after(() => recording.socket.destroy());
  return client;
}

/** roundTrip writes `payload` and waits (bounded) until exactly that comes back. */
async function roundTrip(client: Client, payload: Buffer, timeoutMs = 3000): Promise<void> {
  const before = client.received().length;
  client.socket.write(payload);
  await waitFor(
    () => client.received().length >= before + payload.length || client.isClosed,
    timeoutMs,
    'the echo',
  );
  assert.deepEqual(client.received().subarray(before), payload);
}

/**
 * closedByPeer waits (bounded) until the proxy ended the client's connection: a FIN
 * (the client is half-open capable, so it stays open for writing) or a close/reset.
 */
function closedByPeer(client: Client, timeoutMs: number, what: string): Promise<void> {
  return waitFor(() => client.sawEnd || client.isClosed, timeoutMs, what);
}

/** tryConnect makes one connection attempt and says how it went: 'connected' or the error code. */
function tryConnect(port: number, host = '127.0.0.1'): Promise<string> {
  const attempt = new Promise<string>((resolve) => {
    const socket = netConnect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  return withTimeout(attempt, 2000, `a connection attempt to port ${port}`);
}

function closedRecordFor(cli: RunningCli, localPort: number, timeoutMs = 3000): Promise<LogRecord> {
  return cli.waitForRecord(
    (r) => r.msg === 'connection closed' && r.client === `127.0.0.1:${localPort}`,
    timeoutMs,
    `the access record of client port ${localPort}`,
  );
}

/** stderrLines splits finished output into lines (without the empty tail after the last newline). */
function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1);
}

// ---------------------------------------------------------------- usage errors

interface UsageCase {
  name: string;
  args: string[];
  /** flag is what the one line on stderr must name. */
  flag: string;
}

const DURATION_FLAGS = [
  '--idle-timeout',
  '--half-close-timeout',
  '--connect-timeout',
  '--shutdown-timeout',
];

const USAGE_CASES: UsageCase[] = [
  { name: 'an unknown flag', args: ['-l', LISTEN, '-t', SOME_TARGET, '--bogus'], flag: '--bogus' },
  { name: 'a missing --listen', args: ['--target', SOME_TARGET], flag: '--listen' },
  { name: 'a missing --target', args: ['--listen', LISTEN], flag: '--target' },
  {
    name: 'a --listen port that is not a number',
    args: ['--listen', '127.0.0.1:http', '--target', SOME_TARGET],
    flag: '--listen',
  },
  {
    name: 'a --listen port out of range',
    args: ['--listen', '127.0.0.1:70000', '--target', SOME_TARGET],
    flag: '--listen',
  },
  {
    name: 'an IPv6 --target without brackets',
    args: ['--listen', LISTEN, '--target', '::1:9000'],
    flag: '--target',
  },
  {
    name: 'a --target without a port',
    args: ['--listen', LISTEN, '--target', '127.0.0.1'],
    flag: '--target',
  },
  ...DURATION_FLAGS.flatMap((flag) =>
    ['1.5s', '10sec', 'soon'].map((value) => ({
      name: `${flag} ${value}`,
      args: ['--listen', LISTEN, '--target', SOME_TARGET, flag, value],
      flag,
    })),
  ),
  ...['0', 'many', '2.5'].map((value) => ({
    name: `--max-connections ${value}`,
    args: ['--listen', LISTEN, '--target', SOME_TARGET, '--max-connections', value],
    flag: '--max-connections',
  })),
  {
    name: 'a bad --log-level',
    args: ['--listen', LISTEN, '--target', SOME_TARGET, '--log-level', 'loud'],
    flag: '--log-level',
  },
  {
    name: 'a bad --log-format',
    args: ['--listen', LISTEN, '--target', SOME_TARGET, '--log-format', 'xml'],
    flag: '--log-format',
  },
  { name: '--target missing its value', args: ['--listen', LISTEN, '--target'], flag: '--target' },
  {
    name: '--listen missing its value',
    args: ['--target', SOME_TARGET, '--listen'],
    flag: '--listen',
  },
  {
    name: '--shutdown-timeout missing its value',
    args: ['--listen', LISTEN, '--target', SOME_TARGET, '--shutdown-timeout'],
    flag: '--shutdown-timeout',
  },
];

async function assertUsageError(t: TestContext, args: string[], flag: string): Promise<string> {
  const result = await runCli(t, args);
  assert.equal(result.status, 2, `exit status for ${args.join(' ')}\n${result.stderr}`);
  assert.equal(result.signal, null);
  assert.equal(result.stdout, '', 'nothing on stdout');
  const lines = stderrLines(result.stderr);
  assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${result.stderr}`);
  const line = lines[0] ?? '';
  assert.ok(line.includes(flag), `the line names ${flag}: ${line}`);
  assert.doesNotMatch(line, /listening/, 'nothing was started');
  return line;
}

test('a usage error exits 2 with one line on stderr naming the flag, and starts nothing', {
  concurrency: true,
}, async (t) => {
  await Promise.all(
    USAGE_CASES.map((c) =>
      t.test(c.name, async (t) => {
        await assertUsageError(t, c.args, c.flag);
      }),
    ),
  );
});

test('a value flag followed by something that looks like a flag says it needs a value', {
  concurrency: true,
}, async (t) => {
  // parseArgs calls `--idle-timeout -5` "ambiguous"; the one line must not claim the flag takes none.
  const cases = [
    ['--idle-timeout', '-5'],
    ['--max-connections', '-1'],
    ['--target', '--log-level'],
  ] as const;
  await Promise.all(
    cases.map(([flag, next]) =>
      t.test(`${flag} ${next}`, async (t) => {
        const args = ['--listen', LISTEN, '--target', SOME_TARGET, flag, next];
        const line = await assertUsageError(t, args, flag);
        assert.doesNotMatch(line, /takes no value/);
      }),
    ),
  );
});

test('a flag that takes no value, given one, says so', async (t) => {
  const line = await assertUsageError(t, ['--help=yes'], '--help');
  assert.match(line, /takes no value/);
});

// ---------------------------------------------------------------- help and version

/** The flags cli-contract.md names; those args.ts does not know yet are left out of the check. */
const CONTRACT_FLAGS = [
  ['--listen', '-l'],
  ['--target', '-t'],
  ['--idle-timeout'],
  ['--half-close-timeout'],
  ['--connect-timeout'],
  ['--shutdown-timeout'],
  ['--max-connections'],
  ['--log-level'],
  ['--log-format'],
  ['--config'],
  ['--help'],
  ['--version'],
];

function flagExists(flag: string): boolean {
  try {
    parseArgv([flag]);
    return true;
  } catch (err) {
    return !(err instanceof Error && /unknown option/.test(err.message));
  }
}

test('--help exits 0 and lists every flag of the contract on stdout', async (t) => {
  const known = CONTRACT_FLAGS.filter(([long]) => flagExists(long ?? ''));
  assert.ok(known.length >= 11, 'args.ts knows the flags it had when this test was written');
  for (const args of [['--help'], ['-h']]) {
    const result = await runCli(t, args);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^Usage:/);
    for (const names of known) {
      for (const name of names) {
        assert.match(result.stdout, new RegExp(`(^|[\\s,])${name}\\b`), `usage lists ${name}`);
      }
    }
  }
});

test('--version prints "proxy" and the version from package.json', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  for (const flag of ['--version', '-V']) {
    const result = await runCli(t, [flag]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `l4proxy ${pkg.version}\n`);
    assert.equal(result.stderr, '');
  }
});

// ---------------------------------------------------------------- start-up failure

test('an address in use exits 1 with one line that names the address and says it is in use', async (t) => {
  const blocker = createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.after(() => blocker.close());
  const address = blocker.address();
  assert.ok(address !== null && typeof address === 'object');
  const listen = `127.0.0.1:${address.port}`;
  const result = await runCli(t, ['--listen', listen, '--target', SOME_TARGET]);
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.signal, null);
  assert.equal(result.stdout, '');
  const lines = stderrLines(result.stderr);
  assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${result.stderr}`);
  const line = lines[0] ?? '';
  assert.ok(line.includes(listen), `names ${listen}: ${line}`);
  assert.ok(line.includes('address in use'), line);
});

// ---------------------------------------------------------------- relaying

test('relays bytes both ways between a client and an echo upstream', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = await startCli(t, ['--listen', LISTEN, '--target', upstream.address]);
  assert.match(cli.address, /^127\.0\.0\.1:\d+$/);
  const client = openClient(t, cli.port);
  const payload = patternBytes(256 * 1024, 3);
  client.socket.end(payload);
  await withTimeout(client.ended, 5000, 'the echo to end');
  assert.deepEqual(client.received(), payload);
});

test('listens and relays on IPv6 loopback', async (t) => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  try {
    upstream = await startUpstream(t, echo, '::1');
  } catch (err) {
    t.skip(`::1 cannot be bound here: ${String(err)}`);
    return;
  }
  const cli = await startCli(t, ['--listen', '[::1]:0', '--target', upstream.address]);
  assert.match(cli.address, /^\[::1\]:\d+$/);
  const client = openClient(t, cli.port, '::1');
  await roundTrip(client, Buffer.from('hello over IPv6'));
});

test('writes a JSON access record with bytes each way, times and the cause when a client closes', async (t) => {
  const upstream = await startUpstream(t, (socket) => {
    socket.resume();
    // Answer only after the client's FIN, a little later, so the duration is measurable.
    socket.on('end', () => setTimeout(() => socket.end(patternBytes(3000, 5)), 50));
  });
  const cli = await startCli(t, [
    '--listen',
    LISTEN,
    '--target',
    upstream.address,
    '--log-format',
    'json',
  ]);
  const client = openClient(t, cli.port);
  const localPort = await withTimeout(client.localPort, 2000, 'connect');
  client.socket.end(patternBytes(1000, 4));
  await withTimeout(client.closed, 5000, 'the client to close');
  assert.equal(client.received().length, 3000);

  const record = await closedRecordFor(cli, localPort);
  assert.equal(record.level, 'info');
  assert.equal(record.listener, LISTEN);
  assert.equal(record.client, `127.0.0.1:${localPort}`);
  assert.equal(record.upstream, upstream.address);
  assert.equal(typeof record.connect_ms, 'number');
  assert.ok((record.connect_ms ?? -1) >= 0, `connect_ms ${record.connect_ms}`);
  assert.equal(typeof record.duration_ms, 'number');
  assert.ok(
    (record.duration_ms ?? 0) >= 40,
    `duration_ms ${record.duration_ms} covers the 50ms wait`,
  );
  assert.ok((record.duration_ms ?? 0) >= (record.connect_ms ?? 0));
  assert.equal(record.bytes_to_upstream, 1000);
  assert.equal(record.bytes_to_client, 3000);
  assert.equal(record.cause, 'client_fin');
  assert.equal(record.first_close, 'client');
});

// ---------------------------------------------------------------- signals

test('SIGTERM stops accepting at once, lets a transfer in flight finish, then exits 0', async (t) => {
  const chunkSize = 1024;
  const chunks = 30; // one every 20ms: about 600ms in all
  const expected = Buffer.concat(
    Array.from({ length: chunks }, (_, i) => patternBytes(chunkSize, i + 1)),
  );
  // The last chunk and the FIN wait until the test has seen the refusal: the transfer
  // is still in flight then, however slowly a busy machine runs the steps before.
  let lastChunkHeld = true;
  const upstream = await startUpstream(t, (socket) => {
    socket.resume();
    let sent = 0;
    const timer = setInterval(() => {
      if (sent === chunks - 1 && lastChunkHeld) return;
      sent += 1;
      socket.write(patternBytes(chunkSize, sent));
      if (sent === chunks) {
        clearInterval(timer);
        socket.end();
      }
    }, 20);
    socket.on('close', () => clearInterval(timer));
  });
  const cli = await startCli(t, [
    '--listen',
    LISTEN,
    '--target',
    upstream.address,
    '--shutdown-timeout',
    '10s',
    '--log-format',
    'json',
  ]);
  const client = openClient(t, cli.port);
  let clientEndedAtMs = 0;
  void client.ended.then(() => {
    clientEndedAtMs = Date.now();
    client.socket.end(); // our FIN completes the connection
  });
  await waitFor(() => client.received().length >= chunkSize, 3000, 'the first chunk');

  const signalAtMs = Date.now();
  cli.child.kill('SIGTERM');
  await cli.waitForRecord((r) => r.msg === 'shutting down', 2000, 'the shutting down line');
  let outcome = await tryConnect(cli.port);
  while (outcome !== 'ECONNREFUSED' && Date.now() - signalAtMs < deadline(1000)) {
    outcome = await tryConnect(cli.port);
  }
  const refusedAtMs = Date.now();
  assert.equal(outcome, 'ECONNREFUSED', 'a new connection is refused');
  assert.ok(
    refusedAtMs - signalAtMs < deadline(500),
    `refused ${refusedAtMs - signalAtMs}ms after SIGTERM`,
  );
  assert.equal(client.sawEnd, false, 'refused while the transfer was still in flight');
  assert.equal(cli.exit, null, 'still running while the transfer is in flight');
  lastChunkHeld = false;

  await withTimeout(client.ended, 5000, 'the transfer to finish');
  assert.deepEqual(client.received(), expected, 'every byte arrived, in order');
  const exit = await cli.waitForExit(5000);
  assert.equal(exit.status, 0, cli.stderr());
  assert.equal(exit.signal, null);
  assert.ok(exit.atMs >= clientEndedAtMs, 'exited after the transfer finished');
  assert.ok(
    exit.atMs - signalAtMs < deadline(3000),
    `exited ${exit.atMs - signalAtMs}ms after SIGTERM`,
  );
  const record = cli.records().find((r) => r.msg === 'connection closed');
  assert.equal(record?.cause, 'upstream_fin', 'the connection finished on its own');
  assert.equal(record?.bytes_to_client, expected.length);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} closes a connection that outlives --shutdown-timeout, then exits 0`, async (t) => {
    const upstream = await startUpstream(t, echo);
    const cli = await startCli(t, [
      '--listen',
      LISTEN,
      '--target',
      upstream.address,
      '--shutdown-timeout',
      '300ms',
      '--log-format',
      'json',
    ]);
    const client = openClient(t, cli.port);
    const localPort = await withTimeout(client.localPort, 2000, 'connect');
    await roundTrip(client, Buffer.from('ping'));

    const signalAtMs = Date.now();
    cli.child.kill(signal);
    await closedByPeer(client, 5000, 'the proxy to close the idle connection');
    const closedAfterMs = Date.now() - signalAtMs;
    assert.ok(closedAfterMs >= 250, `closed ${closedAfterMs}ms after ${signal}, not before ~300ms`);
    assert.ok(closedAfterMs < deadline(5000), `closed ${closedAfterMs}ms after ${signal}`);
    assert.ok(client.sawEnd || client.errorCode !== null, 'the client saw the close');

    const exit = await cli.waitForExit(5000);
    assert.equal(exit.status, 0, cli.stderr());
    assert.equal(exit.signal, null);
    const shuttingDown = cli.records().find((r) => r.msg === 'shutting down');
    assert.equal(shuttingDown?.signal, signal);
    const record = await closedRecordFor(cli, localPort, 1000);
    assert.equal(record.cause, 'shutdown');
  });
}

test('a second signal exits at once without waiting for the shutdown timeout', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = await startCli(t, [
    '--listen',
    LISTEN,
    '--target',
    upstream.address,
    '--shutdown-timeout',
    '30s',
    '--log-format',
    'json',
  ]);
  const client = openClient(t, cli.port);
  await roundTrip(client, Buffer.from('ping'));

  const firstAtMs = Date.now();
  cli.child.kill('SIGTERM');
  await cli.waitForRecord((r) => r.msg === 'shutting down', 2000, 'the shutting down line');
  // The connection is still relayed after the first signal (a round trip shows it, where a
  // sleep would only guess how long the proxy needs to act on the signal).
  await roundTrip(client, Buffer.from('still open'));
  assert.equal(cli.exit, null, 'the first signal waits for the open connection');
  assert.equal(client.sawEnd || client.isClosed, false, 'the connection is still open');

  cli.child.kill('SIGTERM');
  const exit = await cli.waitForExit(3000);
  assert.equal(exit.status, 0, cli.stderr());
  assert.equal(exit.signal, null);
  assert.ok(
    exit.atMs - firstAtMs < deadline(3000),
    `exited ${exit.atMs - firstAtMs}ms after the first signal`,
  );
  await closedByPeer(client, 2000, 'the client to see the close');
});

// ---------------------------------------------------------------- limits and failures

test('--max-connections 1 accepts and closes a second concurrent client at once', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = await startCli(t, [
    '--listen',
    LISTEN,
    '--target',
    upstream.address,
    '--max-connections',
    '1',
    '--log-format',
    'json',
  ]);
  const first = openClient(t, cli.port);
  await roundTrip(first, Buffer.from('first'));

  const second = openClient(t, cli.port);
  const secondPort = await withTimeout(second.localPort, 2000, 'the second client to be accepted');
  const openedAtMs = Date.now();
  second.socket.write('anyone there?');
  await closedByPeer(second, 2000, 'the second client to be closed');
  assert.ok(Date.now() - openedAtMs < deadline(1000), 'closed at once');
  assert.equal(second.received().length, 0, 'the second client got no data');
  const record = await closedRecordFor(cli, secondPort);
  assert.equal(record.cause, 'max_connections');
  assert.equal(record.upstream, null);
  assert.equal(upstream.sockets.length, 1, 'the second client never reached the upstream');

  await roundTrip(first, Buffer.from('first, still'));
  first.socket.end();
  await withTimeout(first.closed, 2000, 'the first client to close');
  const third = openClient(t, cli.port);
  await roundTrip(third, Buffer.from('third, once the first is gone'));
});

test('a client whose target refuses is closed promptly and the proxy keeps serving', async (t) => {
  const target = await refusedTarget();
  const cli = await startCli(t, ['--listen', LISTEN, '--target', target, '--log-format', 'json']);
  for (const attempt of [1, 2]) {
    const client = openClient(t, cli.port);
    const localPort = await withTimeout(client.localPort, 2000, `client ${attempt} to be accepted`);
    const startMs = Date.now();
    await closedByPeer(client, 2000, `client ${attempt} to be closed`);
    assert.ok(Date.now() - startMs < deadline(2000));
    assert.equal(client.received().length, 0);
    const record = await closedRecordFor(cli, localPort);
    assert.equal(record.cause, 'connect_refused');
    assert.equal(record.error, 'ECONNREFUSED');
    assert.equal(record.upstream, null);
  }
  assert.equal(cli.exit, null, 'the proxy is still running');
  assert.equal(await tryConnect(cli.port), 'connected', 'and still accepting');
});

/**
 * burst opens `count` clients at once, each sending one byte, and waits until each
 * has either had its byte echoed (proxied) or been closed (refused for lack of fds).
 */
async function burst(t: TestContext, port: number, count: number) {
  const clients = Array.from({ length: count }, () => openClient(t, port));
  for (const client of clients) client.socket.write('x');
  const ended = (c: Client) => c.sawEnd || c.isClosed;
  await waitFor(
    () => clients.every((c) => c.received().length >= 1 || ended(c)),
    5000,
    'every client to be proxied or closed',
  );
  const proxied = clients.filter((c) => c.received().toString() === 'x' && !ended(c));
  const refused = clients.filter((c) => ended(c) && c.received().length === 0);
  return { clients, proxied, refused };
}

test('survives running out of file descriptors and serves again once they are free', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = await startCli(
    t,
    ['--listen', LISTEN, '--target', upstream.address, '--log-format', 'json'],
    { nofile: 64 },
  );
  const shortages = () => cli.records().filter((r) => /out of file descriptors/.test(r.msg));
  const count = 80; // two descriptors per proxied connection: far more than 64 allow

  for (const round of [1, 2]) {
    const { clients, proxied, refused } = await burst(t, cli.port, count);
    const resets = refused.filter((c) => c.errorCode !== null).length;
    t.diagnostic(
      `round ${round}: ${proxied.length} proxied, ${refused.length} closed at once (${resets} by reset)`,
    );
    assert.ok(proxied.length > 0, `round ${round}: some clients were proxied`);
    assert.ok(
      refused.length > 0,
      `round ${round}: the limit was reached (${proxied.length} proxied)`,
    );
    assert.equal(
      proxied.length + refused.length,
      count,
      'every client was either proxied or closed',
    );
    assert.equal(cli.exit, null, 'the proxy is still running');
    // The warning is written before the clients are closed, but our reading of the
    // proxy's stderr pipe may lag behind the clients' close events: wait for it.
    await waitFor(() => shortages().length >= round, 2000, `the warning of burst ${round}`);
    assert.equal(shortages().length, round, 'one warning per burst');
    assert.equal(shortages().at(-1)?.code, 'EMFILE');
    const burstEndMs = Date.now();

    for (const client of clients) client.socket.destroy();
    await waitFor(
      () =>
        cli.records().filter((r) => r.msg === 'connection closed' && r.upstream).length >=
        round * proxied.length,
      3000,
      'the proxied connections to close',
    );
    const fresh = openClient(t, cli.port);
    await roundTrip(fresh, Buffer.from(`hello after burst ${round}`));
    fresh.socket.destroy();
    // The next burst must be a new one: bursts are runs of errors less than 1s apart.
    // This waits out the proxy's own window, a lower bound: a busy machine only makes
    // it longer, never too short.
    if (round === 1)
      await new Promise((r) => setTimeout(r, Math.max(0, burstEndMs + 1100 - Date.now())));
  }

  for (const line of cli.lines()) {
    assert.doesNotThrow(() => JSON.parse(line), `every stderr line is a log record: ${line}`);
  }
  assert.ok(cli.records().every((r) => r.level === 'info' || r.level === 'warn'));
  assert.equal(cli.exit, null);
});
