/**
 * Faults of the world around the proxy, with real processes: the built CLI
 * (dist/cli.js) in front of upstreams that run in child processes of their own, so
 * that they can be killed with SIGKILL or stopped with SIGSTOP like a real server.
 * Every child is ended by its PID after the test (a stopped one is continued first).
 * Build first (`npm run build`).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type LogRecord, spawnCli, startCli, withTimeout } from '../helpers/cli.js';
import {
  blackholeAddress,
  connectClient,
  patternBytes,
  type RecordingClient,
  refusedAddress,
  waitFor,
} from '../helpers/net.js';

// ---------------------------------------------------------------- helpers

/**
 * The upstream's program. `echo`: sends back what it reads. `stream`: sends 64 KiB
 * chunks as fast as the peer takes them and never reads. It prints its port first.
 */
const UPSTREAM = `
const net = require('node:net');
const mode = process.argv[1];
const chunk = Buffer.alloc(65536, 7);
// pauseOnConnect: in 'stream' mode not one byte is read, so unread bytes stay in the
// kernel, and a SIGKILL makes the kernel answer with a reset (not a FIN).
const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: mode === 'stream' }, (socket) => {
  socket.on('error', () => {});
  if (mode === 'echo') return socket.pipe(socket);
  const pump = () => { while (socket.write(chunk)); };
  socket.on('drain', pump);
  pump();
});
server.listen({ host: '127.0.0.1', port: 0 }, () => {
  process.stdout.write(server.address().port + '\\n');
});`;

interface ChildUpstream {
  child: ChildProcess;
  pid: number;
  address: string;
}

/** startChildUpstream runs an upstream in a child process, continued and killed by PID after the test. */
async function startChildUpstream(t: TestContext, mode: 'echo' | 'stream'): Promise<ChildUpstream> {
  const child = spawn(process.execPath, ['-e', UPSTREAM, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = child.pid as number;
  t.after(() => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    // Continued first, so that nothing is left stopped even if the kill fails.
    process.kill(pid, 'SIGCONT');
    process.kill(pid, 'SIGKILL');
  });
  const [line] = (await once(child.stdout ?? child, 'data')) as [Buffer];
  return { child, pid, address: `127.0.0.1:${Number(String(line).trim())}` };
}

/** descriptorCount is how many descriptors the process `pid` has open (Linux /proc). */
function descriptorCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** closedRecord matches the access record of a closed connection. */
const closedRecord =
  (cause?: string) =>
  (r: LogRecord): boolean =>
    r.msg === 'connection closed' && (cause === undefined || r.cause === cause);

/**
 * gone resolves when the client saw the proxy end its side (FIN, reset or close), or
 * fails after 5 s. A reset is one of the answers: `ended` rejects with it (events.once
 * rejects on 'error'), so it counts as the end here; the caller reads `errorCode`.
 */
function gone(client: RecordingClient, what: string): Promise<unknown> {
  const endedOrReset = client.ended.catch(() => {});
  return withTimeout(Promise.race([endedOrReset, client.closed]), 5000, what);
}

/** echoRoundTrip sends `data` through the proxy at `port`, FINs, and resolves with what came back. */
async function echoRoundTrip(port: number, data: Buffer): Promise<RecordingClient> {
  const client = connectClient(port);
  client.socket.end(data);
  await withTimeout(client.closed, 10_000, 'an echo round trip');
  return client;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------- tests

test('an upstream killed with SIGKILL mid-transfer: the client sees the break at once, the cause is logged, new clients are served', async (t) => {
  const dying = await startChildUpstream(t, 'stream');
  const spare = await startChildUpstream(t, 'echo');
  const cli = await startCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    dying.address,
    '--target',
    spare.address,
    '--log-format',
    'json',
  ]);
  const client = connectClient(cli.port);
  // Bytes the upstream never reads, so that its kernel may answer the kill with a reset.
  client.socket.write(Buffer.alloc(1024, 1));
  await waitFor(() => client.received().length >= 1024 * 1024, 10_000, '1 MiB from the upstream');

  process.kill(dying.pid, 'SIGKILL');
  await gone(client, 'the client to see the break');
  // The killed process's kernel closes its sockets: a reset, or a FIN when it holds no
  // unread bytes (seen on Linux here even so); a FIN leaves the client's half open.
  if (client.errorCode === null) client.socket.end();
  const record = await cli.waitForRecord(closedRecord(), 5000, 'the access record');
  assert.ok(
    ['upstream_reset', 'upstream_fin'].includes(String(record.cause)),
    JSON.stringify(record),
  );

  // The next clients fail over from the dead target to the live one.
  for (let i = 0; i < 2; i++) {
    const data = patternBytes(100_000, i + 1);
    const next = await echoRoundTrip(cli.port, data);
    assert.equal(sha(next.received()), sha(data));
  }
  assert.equal(cli.exit, null, 'the proxy still runs');
});

test('an upstream stopped with SIGSTOP: idle timeouts fire on open and new connections, nothing hangs, and it serves again after SIGCONT', async (t) => {
  const upstream = await startChildUpstream(t, 'echo');
  const cli = await startCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
    '--idle-timeout',
    '500ms',
    '--log-format',
    'json',
  ]);
  const before = connectClient(cli.port);
  before.socket.write('ping');
  await waitFor(() => before.received().length === 4, 5000, 'the echo before the stop');

  process.kill(upstream.pid, 'SIGSTOP');
  try {
    before.socket.write('unanswered');
    // The kernel still completes handshakes for a stopped process, so a new client
    // connects too, and then nothing comes back.
    const during = connectClient(cli.port);
    during.socket.write('unanswered');
    await gone(before, 'the open connection to time out');
    await gone(during, 'the new connection to time out');
    await cli.waitForRecord(
      () => cli.records().filter(closedRecord('idle_timeout')).length === 2,
      5000,
      'two idle_timeout records',
    );
    assert.equal(cli.records().filter(closedRecord()).length, 2);
  } finally {
    process.kill(upstream.pid, 'SIGCONT');
  }
  const data = patternBytes(50_000, 3);
  const after = await echoRoundTrip(cli.port, data);
  assert.equal(sha(after.received()), sha(data));
});

/**
 * leaveWhileConnecting: five clients reset while the proxy is still connecting to a
 * target that never answers; each context must close with `cause` within
 * `closeWithinMs`, and the proxy's descriptors must come back to where they were.
 */
async function leaveWhileConnecting(
  t: TestContext,
  connectTimeout: string,
  causes: readonly string[],
  closeWithinMs: number,
): Promise<void> {
  const target = await blackholeAddress(t); // a connect to it neither succeeds nor fails
  const cli = await startCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    target,
    '--connect-timeout',
    connectTimeout,
    '--log-format',
    'json',
    '--log-level',
    'trace',
  ]);
  const pid = cli.child.pid as number;
  const baseline = descriptorCount(pid);
  for (let i = 1; i <= 5; i++) {
    const client = connectClient(cli.port);
    await cli.waitForRecord(
      (r) => r.msg.startsWith('connecting to') && String(r.id) === String(i),
      5000,
      `connection ${i} connecting`,
    );
    client.socket.resetAndDestroy();
    const record = await cli.waitForRecord(
      (r) => closedRecord()(r) && String(r.id) === String(i),
      closeWithinMs,
      `connection ${i} closed`,
    );
    assert.ok(causes.includes(String(record.cause)), JSON.stringify(record));
    assert.equal(record.upstream, null);
  }
  // Both sockets of every context are gone: the client's and the one still connecting.
  await waitFor(() => descriptorCount(pid) <= baseline, 5000, `descriptors back to ${baseline}`);
}

test('a client that leaves while the proxy is still connecting is released by the connect timeout at the latest, and nothing leaks', async (t) => {
  await leaveWhileConnecting(t, '1s', ['client_reset', 'connect_timeout'], 8000);
});

// The client is read while the upstream is being dialled, so its reset is seen at
// once, not when the connect ends (with a 60 s connect timeout here). Issue #9.
test('a client that leaves while the proxy is still connecting is torn down at once', async (t) => {
  await leaveWhileConnecting(t, '60s', ['client_reset'], 3000);
});

test('EPIPE on write: a client gone while the proxy writes to it ends the connection as client_reset and nothing leaks', async (t) => {
  const upstream = await startChildUpstream(t, 'stream');
  const cli = await startCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
    '--log-format',
    'json',
  ]);
  const pid = cli.child.pid as number;
  const baseline = descriptorCount(pid);
  const client = connectClient(cli.port);
  await waitFor(() => client.received().length >= 256 * 1024, 10_000, 'data flowing to the client');
  // Gone with unread bytes: the kernel answers the proxy's next write with a reset,
  // and the write after that fails with EPIPE.
  client.socket.resetAndDestroy();
  const record = await cli.waitForRecord(closedRecord(), 5000, 'the access record');
  assert.equal(record.cause, 'client_reset', JSON.stringify(record));
  assert.ok(['EPIPE', 'ECONNRESET'].includes(String(record.error)), JSON.stringify(record));
  await waitFor(() => descriptorCount(pid) <= baseline, 5000, `descriptors back to ${baseline}`);
  assert.equal(cli.exit, null);
});

test('SIGHUP 100 times in 10 s under traffic: every byte arrives, every listener keeps serving, no descriptor leaks', async (t) => {
  const upstream = await startChildUpstream(t, 'echo');
  const dir = mkdtempSync(join(tmpdir(), 'proxy-world-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'proxy.yaml');
  // A config file names fixed ports: two just freed.
  const ports = (await Promise.all([refusedAddress(), refusedAddress()])).map((a) =>
    Number(a.slice(a.lastIndexOf(':') + 1)),
  );
  writeFileSync(
    file,
    `listeners:\n${ports
      .map(
        (p, i) =>
          `  - name: l${i}\n    listen: 127.0.0.1:${p}\n    targets: [${upstream.address}]\n`,
      )
      .join('')}`,
  );
  const cli = spawnCli(t, ['--config', file, '--log-format', 'json']);
  await cli.waitForRecord(
    () => cli.records().filter((r) => r.msg === 'listening').length === 2,
    5000,
    'both listeners',
  );
  const pid = cli.child.pid as number;
  // A first round trip on each listener, so the baseline has whatever Node opens once.
  for (const port of ports) await echoRoundTrip(port, Buffer.from('warm'));
  await waitFor(() => cli.records().filter(closedRecord()).length === 2, 5000, 'warm-up records');
  const baseline = descriptorCount(pid);

  const transfers = Array.from({ length: 20 }, (_, i) => {
    const data = patternBytes(1024 * 1024, i + 1);
    return echoRoundTrip(ports[i % 2] as number, data).then((c) => {
      assert.equal(c.errorCode, null, `transfer ${i}`);
      assert.equal(sha(c.received()), sha(data), `transfer ${i}: bytes intact`);
    });
  });
  const hups = (async () => {
    for (let i = 0; i < 100; i++) {
      process.kill(pid, 'SIGHUP');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  await Promise.all([...transfers, hups]);

  assert.equal(cli.exit, null, 'the proxy still runs');
  assert.ok(cli.records().some((r) => r.msg === 'config reloaded'));
  assert.ok(!cli.records().some((r) => r.msg === 'config reload refused'));
  for (const port of ports) {
    const data = patternBytes(10_000, port);
    const c = await echoRoundTrip(port, data);
    assert.equal(sha(c.received()), sha(data), `listener on ${port} still serves`);
  }
  await waitFor(() => descriptorCount(pid) <= baseline, 5000, `descriptors back to ${baseline}`);
});
