/**
 * Socket activation end to end, with the real thing: `systemd-socket-activate` (from
 * Debian's systemd package; .ci/run installs it) binds the sockets, waits for the
 * first client, then execs `node dist/cli.js` with LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES set, as systemd does for a .socket unit. Since it execs, the PID
 * we spawn is the proxy's. The first client connects before the proxy exists: the
 * kernel completes its handshake and queues it until the proxy accepts.
 *
 * Most tests use Unix socket paths in a fresh directory: a TCP port would have to be
 * picked in advance (systemd-socket-activate cannot bind port 0 and tell us which it
 * got), and on a busy machine any port may be taken in between. One test uses TCP on
 * a port picked outside the kernel's ephemeral range.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type CliChild, type LogRecord, spawnCli, withTimeout } from '../helpers/cli.js';
import { echo, startUpstream, waitFor } from '../helpers/net.js';

const ACTIVATE = ['/usr/bin/systemd-socket-activate', '/bin/systemd-socket-activate'].find(
  existsSync,
);

/** activateTool is the path of systemd-socket-activate, or a failure saying how to get it. */
function activateTool(): string {
  if (ACTIVATE === undefined)
    throw new Error('systemd-socket-activate not found: apt-get install systemd (.ci/run does)');
  return ACTIVATE;
}

type Record = LogRecord & { worker?: number };

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-activate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * activate runs `systemd-socket-activate [--fdname=NAMES] -l A -l B ... node cli.js
 * ...args` and waits until it listens on every address (it prints "Listening on A as 3.").
 */
async function activate(
  t: TestContext,
  listens: readonly string[],
  args: readonly string[],
  fdnames?: string,
): Promise<CliChild> {
  const prefix = [
    activateTool(),
    ...(fdnames === undefined ? [] : [`--fdname=${fdnames}`]),
    ...listens.flatMap((l) => ['-l', l]),
  ];
  const cli = spawnCli(t, args, { prefix });
  await cli.waitForLine(
    (line) => line.startsWith(`Listening on ${listens.at(-1)} as`),
    5000,
    'systemd-socket-activate to listen',
  );
  return cli;
}

/** ask connects to a Unix socket path or a TCP port, sends `text`, and resolves with all it got back. */
async function ask(to: string | number, text: string): Promise<string> {
  const socket: Socket =
    typeof to === 'number' ? netConnect(to, '127.0.0.1') : netConnect({ path: to });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.end(text);
  await withTimeout(once(socket, 'close'), 5000, `an answer from ${to}`);
  return Buffer.concat(chunks).toString();
}

/** namedUpstream starts an upstream that answers every client with its name. */
async function namedUpstream(t: TestContext, name: string): Promise<string> {
  const upstream = await startUpstream(t, (socket) => {
    socket.resume();
    socket.on('end', () => socket.end(name));
  });
  return upstream.address;
}

/** listening is the `listening` record of `listener`. */
function listening(cli: CliChild, listener: string): Promise<Record> {
  return cli.waitForRecord(
    (r) => r.msg === 'listening' && r.listener === listener,
    5000,
    `${listener} listening`,
  );
}

/** twoListeners writes a config file of listeners web and db (Unix paths never bound if activated). */
function twoListeners(dir: string, web: string, db: string, extra = ''): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    `defaults:\n  log_format: json\n  shutdown_timeout: 2s\nlisteners:\n` +
      `  - name: web\n    listen: unix:${dir}/web-config.sock\n    targets: ["${web}"]\n` +
      `  - name: db\n    listen: unix:${dir}/db-config.sock\n    targets: ["${db}"]\n${extra}`,
  );
  return file;
}

/** freePort finds a TCP port on 127.0.0.1 below the ephemeral range, free when asked. */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const server = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      await new Promise((resolve) => server.close(resolve));
      return port;
    }
  }
  throw new Error('no free port in 50 tries');
}

test('serves, on the TCP socket systemd-socket-activate passed as fd 3, a client that connected before the proxy started', async (t) => {
  const upstream = await startUpstream(t, echo);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  // The proxy is told the same address: had it bound instead of taking fd 3, it
  // would fail with "address in use".
  const cli = await activate(
    t,
    [address],
    ['--listen', address, '--target', upstream.address, '--log-format', 'json'],
  );
  assert.equal(await ask(port, 'first, before the proxy ran'), 'first, before the proxy ran');
  const record = await listening(cli, address);
  assert.equal(record.fd, 3);
  assert.equal(record.address, address);
  assert.equal(await ask(port, 'second'), 'second');
});

test('matches the sockets to the listeners by FileDescriptorName, whatever their order', async (t) => {
  const dir = tempDir(t);
  const file = twoListeners(dir, await namedUpstream(t, 'web'), await namedUpstream(t, 'db'));
  const [a, b] = [join(dir, 'a.sock'), join(dir, 'b.sock')];
  // fd 3 (a.sock) is named db, fd 4 (b.sock) web: the reverse of the config's order.
  const cli = await activate(t, [a, b], ['--config', file], 'db:web');
  assert.equal(await ask(a, 'x'), 'db');
  assert.equal(await ask(b, 'x'), 'web');
  const [web, db] = [await listening(cli, 'web'), await listening(cli, 'db')];
  assert.deepEqual([web.fd, web.address], [4, 'fd:4']);
  assert.deepEqual([db.fd, db.address], [3, 'fd:3']);
});

test('gives unnamed sockets to the listeners in the order of the config', async (t) => {
  const dir = tempDir(t);
  const file = twoListeners(dir, await namedUpstream(t, 'web'), await namedUpstream(t, 'db'));
  const [a, b] = [join(dir, 'a.sock'), join(dir, 'b.sock')];
  const cli = await activate(t, [a, b], ['--config', file]);
  assert.equal(await ask(a, 'x'), 'web');
  assert.equal(await ask(b, 'x'), 'db');
  assert.equal((await listening(cli, 'web')).fd, 3);
  assert.equal((await listening(cli, 'db')).fd, 4);
});

/** refused runs an activation that must fail and returns the proxy's one error line. */
async function refused(
  t: TestContext,
  listens: string[],
  args: string[],
  fdnames?: string,
): Promise<string> {
  const cli = await activate(t, listens, args, fdnames);
  // The first client makes systemd-socket-activate start the proxy.
  const trigger = netConnect({ path: listens[0] as string });
  trigger.on('error', () => {});
  t.after(() => trigger.destroy());
  const exit = await cli.waitForExit(5000);
  assert.equal(exit.status, 2, cli.stderr());
  const ours = cli.lines().filter((line) => line.startsWith('l4proxy: '));
  assert.equal(ours.length, 1, cli.stderr());
  assert.ok(!cli.lines().some((l) => l.includes('"listening"')), cli.stderr());
  return ours[0] as string;
}

test('refuses more sockets than listeners, naming the one left over (exit 2)', async (t) => {
  const dir = tempDir(t);
  const upstream = await startUpstream(t, echo);
  const [a, b] = [join(dir, 'a.sock'), join(dir, 'b.sock')];
  const line = await refused(
    t,
    [a, b],
    ['--listen', `unix:${dir}/config.sock`, '--target', upstream.address],
  );
  assert.match(
    line,
    /^l4proxy: socket activation: fd 4 has no listener \(LISTEN_FDS=2 for 1 listener\(s\)\)/,
  );
});

test('refuses fewer sockets than listeners, naming the listener without one (exit 2)', async (t) => {
  const dir = tempDir(t);
  const file = twoListeners(dir, '127.0.0.1:1', '127.0.0.1:2');
  const line = await refused(t, [join(dir, 'a.sock')], ['--config', file], 'web');
  assert.match(
    line,
    /^l4proxy: socket activation: listener db has no socket \(LISTEN_FDS=1 for 2 listener\(s\)\); add a ListenStream= with FileDescriptorName=db$/,
  );
});

test('refuses two sockets named like one listener (exit 2)', async (t) => {
  const dir = tempDir(t);
  const file = twoListeners(dir, '127.0.0.1:1', '127.0.0.1:2');
  const line = await refused(
    t,
    [join(dir, 'a.sock'), join(dir, 'b.sock')],
    ['--config', file],
    'web:web',
  );
  assert.match(line, /^l4proxy: socket activation: fd 3 and fd 4 are both named "web"/);
});

/** spawnWithFd3 runs the CLI with `fd3` as descriptor 3 and LISTEN_PID set to the CLI's own PID. */
function spawnWithFd3(t: TestContext, fd3: number | Socket, args: string[]): CliChild {
  // sh sets LISTEN_PID to its own PID, then exec keeps that PID for node.
  return spawnCli(t, args, {
    prefix: ['sh', '-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', 'sh'],
    env: { ...process.env, LISTEN_FDS: '1' },
    fds: [fd3],
  });
}

test('refuses a descriptor that is not a socket, or a socket it cannot listen on (exit 2)', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, '');
  const fd = openSync(file, 'r');
  t.after(() => closeSync(fd));
  const args = ['--listen', '127.0.0.1:0', '--target', '127.0.0.1:1'];
  const plain = spawnWithFd3(t, fd, args);
  assert.equal((await plain.waitForExit()).status, 2, plain.stderr());
  assert.equal(plain.stderr(), 'l4proxy: socket activation: fd 3 is not a socket\n');

  // A connected TCP socket is a socket, but not one to accept on.
  const upstream = await startUpstream(t, echo);
  const connected = netConnect(upstream.port, '127.0.0.1');
  await once(connected, 'connect');
  t.after(() => connected.destroy());
  const cli = spawnWithFd3(t, connected, args);
  assert.equal((await cli.waitForExit()).status, 2, cli.stderr());
  assert.match(
    cli.stderr(),
    /^l4proxy: socket activation: listener 127\.0\.0\.1:0 cannot listen on fd 3: .*\(expected a listening stream socket, ListenStream=\)\n$/,
  );
});

test('ignores LISTEN_FDS meant for another process (LISTEN_PID) and binds its own address', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = spawnCli(
    t,
    ['--listen', '127.0.0.1:0', '--target', upstream.address, '--log-format', 'json'],
    { env: { ...process.env, LISTEN_PID: '1', LISTEN_FDS: '1' } },
  );
  const ignored = await cli.waitForRecord((r) => r.msg === 'socket activation ignored');
  assert.match(String(ignored.reason), /^LISTEN_PID is 1, not this process \(\d+\)$/);
  const record: Record = await listening(cli, '127.0.0.1:0');
  assert.equal(record.fd, undefined);
  const port = Number(/:(\d+)$/.exec(record.address ?? '')?.[1]);
  assert.equal(await ask(port, 'bound'), 'bound');
});

test('--workers 2: the primary keeps the passed socket and both workers serve on it', async (t) => {
  const dir = tempDir(t);
  const upstream = await startUpstream(t, echo);
  const a = join(dir, 'a.sock');
  const cli = await activate(
    t,
    [a],
    [
      '--workers',
      '2',
      '--listen',
      `unix:${dir}/config.sock`,
      '--target',
      upstream.address,
      '--log-format',
      'json',
    ],
  );
  assert.equal(await ask(a, 'first'), 'first');
  await waitFor(
    () => cli.records().filter((r) => r.msg === 'listening').length === 2,
    10_000,
    'both workers listening',
  );
  const records = cli.records().filter((r) => r.msg === 'listening') as Record[];
  assert.deepEqual(
    records.map((r) => [r.fd, r.address]),
    [
      [3, 'fd:3'],
      [3, 'fd:3'],
    ],
  );
  assert.deepEqual(new Set(records.map((r) => r.worker)), new Set([1, 2]));
  for (let i = 0; i < 6; i++) assert.equal(await ask(a, `n${i}`), `n${i}`);
  assert.ok(!existsSync(join(dir, 'config.sock')), 'the configured address was bound');
  // The primary unset LISTEN_*, so no worker read them again (and logged them ignored).
  assert.ok(!cli.records().some((r) => r.msg === 'socket activation ignored'), cli.stderr());
});

test('a reload keeps an inherited listener whose listen changed, and binds the one it added', async (t) => {
  const dir = tempDir(t);
  const web = await namedUpstream(t, 'web');
  const db = await namedUpstream(t, 'db');
  const file = twoListeners(dir, web, db);
  const [a, b] = [join(dir, 'a.sock'), join(dir, 'b.sock')];
  const cli = await activate(t, [a, b], ['--config', file], 'web:db');
  assert.equal(await ask(a, 'x'), 'web');
  await listening(cli, 'db');
  // web moves (in the file) and a listener is added; the proxy's PID is the one we spawned.
  writeFileSync(
    file,
    `defaults:\n  log_format: json\n  shutdown_timeout: 2s\nlisteners:\n` +
      `  - name: web\n    listen: unix:${dir}/moved.sock\n    targets: ["${db}"]\n` +
      `  - name: db\n    listen: unix:${dir}/db-config.sock\n    targets: ["${db}"]\n` +
      `  - name: extra\n    listen: unix:${dir}/extra.sock\n    targets: ["${web}"]\n`,
  );
  process.kill(cli.child.pid as number, 'SIGHUP');
  const reloaded = await cli.waitForRecord((r) => r.msg === 'config reloaded');
  assert.deepEqual([reloaded.added, reloaded.changed], [['extra'], ['web']]);
  // web still accepts on fd 3, with its new targets; extra bound its own address.
  assert.equal(await ask(a, 'x'), 'db');
  assert.equal(await ask(join(dir, 'extra.sock'), 'x'), 'web');
  const extra: Record = await listening(cli, 'extra');
  assert.deepEqual([extra.fd, extra.address], [undefined, `unix:${dir}/extra.sock`]);
  assert.ok(!existsSync(join(dir, 'moved.sock')), 'web was bound anew at its new address');
});

/**
 * RESTARTER runs the proxy twice on the socket systemd-socket-activate passed it (fd 3),
 * as systemd does across `systemctl restart`: it holds the socket itself, starts a proxy
 * with LISTEN_PID set to the proxy's PID, prints `proxy PID`, and after it exited
 * (`exited STATUS`) waits for a line on stdin before starting the next.
 */
const RESTARTER = `
for round in 1 2; do
  sh -c 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"' sh "$@" &
  echo "proxy $!"
  wait $!
  echo "exited $?"
  [ "$round" = 2 ] || read go
done`;

test('a client that connects while the proxy restarts is not refused: the next proxy serves it', async (t) => {
  const dir = tempDir(t);
  const upstream = await startUpstream(t, echo);
  const a = join(dir, 'a.sock');
  const cli = spawnCli(
    t,
    ['--listen', `unix:${dir}/config.sock`, '--target', upstream.address, '--log-format', 'json'],
    { prefix: [activateTool(), '-l', a, 'sh', '-c', RESTARTER, 'sh'], stdin: 'pipe' },
  );
  const pids: number[] = [];
  t.after(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {} // already gone
    }
  });
  const proxyPid = async (n: number): Promise<number> => {
    await waitFor(() => cli.stdout().match(/^proxy \d+$/gm)?.length === n, 5000, `proxy ${n}`);
    const pid = Number(
      cli
        .stdout()
        .match(/^proxy (\d+)$/gm)
        ?.[n - 1]?.slice(6),
    );
    pids.push(pid);
    return pid;
  };
  await cli.waitForLine((l) => l.startsWith(`Listening on ${a} as 3`), 5000, 'the socket');
  assert.equal(await ask(a, 'one'), 'one');
  const first = await proxyPid(1);
  process.kill(first, 'SIGTERM');
  await waitFor(() => /^exited 0$/m.test(cli.stdout()), 5000, 'the first proxy to exit');

  // No proxy runs now. The kernel completes the handshake and queues the client.
  const client = netConnect({ path: a });
  const chunks: Buffer[] = [];
  let error: string | null = null;
  client.on('data', (chunk: Buffer) => chunks.push(chunk));
  client.on('error', (err: NodeJS.ErrnoException) => {
    error = err.code ?? 'UNKNOWN';
  });
  await withTimeout(once(client, 'connect'), 5000, 'connect while no proxy runs');
  client.write('two');
  assert.equal(cli.records().filter((r) => r.msg === 'listening').length, 1);

  cli.child.stdin?.write('go\n');
  await proxyPid(2);
  await waitFor(() => Buffer.concat(chunks).toString() === 'two', 5000, 'the echo of "two"');
  assert.equal(error, null);
  // Log lines reach stderr up to 25 ms after their event (log.ts).
  await waitFor(
    () => cli.records().filter((r) => r.msg === 'listening' && r.fd === 3).length === 2,
    5000,
    'the second proxy listening on fd 3',
  );
  client.destroy();
});
