/**
 * `proxy --config FILE` end to end: the built CLI (dist/cli.js) runs as a child
 * process with a config file in a fresh temporary directory, and the tests change
 * the file and send SIGHUP. They check what cli-contract.md promises: a reload adds,
 * removes and changes listeners without touching open connections, is all or
 * nothing, and logs one record; plus `proxy check`, Unix domain sockets, flag
 * precedence over the file's defaults, and weighted targets. Build first
 * (`npm run build`).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type NetConnectOpts, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { type CliChild, type LogRecord, runCli, spawnCli, withTimeout } from '../helpers/cli.js';
import { echo, refusedAddress, startUpstream, type Upstream, waitFor } from '../helpers/net.js';
import { deadline } from '../helpers/time.js';

// ---------------------------------------------------------------- helpers

/** tempDir makes a fresh directory for this test's config and sockets, removed after it. */
function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** freeAddress is 127.0.0.1:PORT with a port just freed (a second listener cannot use port 0 too). */
function freeAddress(): Promise<string> {
  return refusedAddress();
}

/** ConfigCli is a CLI started with --config, and the bound address of each listener by name. */
interface ConfigCli extends CliChild {
  file: string;
  addresses: Map<string, string>;
  /** reload writes `text` to the file, sends SIGHUP and waits for the reload record. */
  reload(text: string): Promise<LogRecord>;
}

const RELOAD_RECORD = (r: LogRecord): boolean =>
  r.msg === 'config reloaded' || r.msg === 'config reload refused';

/**
 * startConfigCli writes `text` to `file`, starts `proxy --config file --log-format json`
 * (plus `args`), and waits for the `listening` record of every name in `names`.
 */
async function startConfigCli(
  t: TestContext,
  file: string,
  text: string,
  names: readonly string[],
  args: readonly string[] = [],
): Promise<ConfigCli> {
  writeFileSync(file, text);
  const cli = spawnCli(t, ['--config', file, '--log-format', 'json', ...args]);
  const addresses = new Map<string, string>();
  for (const name of names) addresses.set(name, await listeningAddress(cli, name));
  let reloads = 0;
  return Object.assign(cli, {
    file,
    addresses,
    async reload(next: string): Promise<LogRecord> {
      writeFileSync(file, next);
      reloads += 1;
      const nth = reloads;
      process.kill(cli.child.pid as number, 'SIGHUP');
      await cli.waitForRecord(
        () => cli.records().filter(RELOAD_RECORD).length >= nth,
        3000,
        `reload record #${nth}`,
      );
      return cli.records().filter(RELOAD_RECORD)[nth - 1] as LogRecord;
    },
  });
}

/** listeningAddress waits for the `listening` record of listener `name` and returns its address. */
async function listeningAddress(cli: CliChild, name: string): Promise<string> {
  const record = await cli.waitForRecord(
    (r) => r.msg === 'listening' && r.listener === name,
    5000,
    `listener ${name} to listen`,
  );
  return record.address ?? '';
}

function addressOf(cli: ConfigCli, name: string): string {
  const address = cli.addresses.get(name);
  assert.ok(address !== undefined, `no address for listener ${name}`);
  return address;
}

/** endpoint turns `127.0.0.1:P`, `[::1]:P` or `unix:/path` into net.connect options. */
function endpoint(address: string): NetConnectOpts {
  if (address.startsWith('unix:')) return { path: address.slice('unix:'.length) };
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  assert.ok(match !== null, `not an address: ${address}`);
  return { host: match[1] as string, port: Number(match[2]) };
}

/** Client is a client socket that records bytes, FIN and close; destroyed after the test. */
interface Client {
  socket: Socket;
  chunks: Buffer[];
  received(): Buffer;
  connected: Promise<void>;
  /** closed resolves once the socket closed. */
  closed: Promise<void>;
  sawEnd: boolean;
  isClosed: boolean;
}

/** openClient connects to `address`; half-open capable unless `allowHalfOpen` is false. */
function openClient(t: TestContext, address: string, allowHalfOpen = true): Client {
  const socket = netConnect({ ...endpoint(address), allowHalfOpen });
  const client: Client = {
    socket,
    chunks: [],
    received: () => Buffer.concat(client.chunks),
    connected: new Promise((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    }),
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
    sawEnd: false,
    isClosed: false,
  };
  client.connected.catch(() => {});
  socket.on('data', (chunk: Buffer) => client.chunks.push(chunk));
  socket.on('end', () => {
    client.sawEnd = true;
  });
  socket.on('close', () => {
    client.isClosed = true;
  });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  return client;
}

/** roundTrip writes `payload` and waits (bounded) until exactly that has come back. */
async function roundTrip(client: Client, payload: string, timeoutMs = 3000): Promise<void> {
  const before = client.received().length;
  client.socket.write(payload);
  await waitFor(
    () => client.received().length >= before + payload.length || client.isClosed,
    timeoutMs,
    `the echo of ${JSON.stringify(payload)}`,
  );
  assert.equal(client.received().subarray(before).toString(), payload);
}

/** readAll connects to `address` and returns everything received until the connection closed. */
async function readAll(t: TestContext, address: string, timeoutMs = 3000): Promise<string> {
  const client = openClient(t, address, false);
  await withTimeout(client.closed, timeoutMs, `the reply from ${address}`);
  return client.received().toString();
}

/** tryConnect makes one connection attempt and says how it went: 'connected' or the error code. */
function tryConnect(address: string): Promise<string> {
  const attempt = new Promise<string>((resolve) => {
    const socket = netConnect(endpoint(address));
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  return withTimeout(attempt, 2000, `a connection attempt to ${address}`);
}

/** namedUpstream answers every connection with its name, then FIN. */
function namedUpstream(t: TestContext, name: string): Promise<Upstream> {
  return startUpstream(t, (socket) => socket.end(name));
}

/** unixServer listens on `path` and hands each socket to `onSocket`; closed after the test. */
async function unixServer(
  t: TestContext,
  path: string,
  onSocket: (socket: Socket) => void,
): Promise<void> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onSocket(socket);
  });
  server.listen(path);
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
}

function closedRecords(cli: CliChild, listener: string): LogRecord[] {
  return cli.records().filter((r) => r.msg === 'connection closed' && r.listener === listener);
}

/** oneLine asserts that finished stderr output is exactly one line and returns it. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n');
  assert.equal(lines.pop(), '', `stderr does not end with a newline: ${JSON.stringify(stderr)}`);
  assert.equal(lines.length, 1, `expected one line on stderr, got ${JSON.stringify(stderr)}`);
  return lines[0] as string;
}

// ---------------------------------------------------------------- sequence stream

/**
 * SequenceStream writes 4-byte big-endian numbers 0, 1, 2, ... to a socket, a few
 * every couple of milliseconds, until stopped.
 */
class SequenceStream {
  sent = 0;
  readonly #socket: Socket;
  readonly #timer: NodeJS.Timeout;

  constructor(socket: Socket, perTick = 4, everyMs = 2) {
    this.#socket = socket;
    this.#timer = setInterval(() => this.#tick(perTick), everyMs);
  }

  #tick(count: number): void {
    const chunk = Buffer.allocUnsafe(count * 4);
    for (let i = 0; i < count; i++) chunk.writeUInt32BE(this.sent + i, i * 4);
    this.sent += count;
    this.#socket.write(chunk);
  }

  /** stop writes nothing more and returns how many numbers were sent. */
  stop(): number {
    clearInterval(this.#timer);
    return this.sent;
  }
}

/** assertSequence checks that `bytes` is exactly the numbers 0..count-1, in order. */
function assertSequence(bytes: Buffer, count: number, where: string): void {
  assert.equal(bytes.length, count * 4, `${where}: ${bytes.length} bytes for ${count} numbers`);
  for (let i = 0; i < count; i++) {
    const n = bytes.readUInt32BE(i * 4);
    if (n !== i) assert.fail(`${where}: number ${i} is ${n} (lost or reordered bytes)`);
  }
}

// ---------------------------------------------------------------- 1. the contract

test('SIGHUP adds, removes and changes listeners without losing a byte of an open connection', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proxy.yaml');
  const receivedByOldA: Buffer[] = [];
  const oldA = await startUpstream(t, (socket) => {
    socket.on('data', (chunk: Buffer) => receivedByOldA.push(chunk));
    echo(socket);
  });
  const newA = await namedUpstream(t, 'new-a');
  const upstreamB = await startUpstream(t, echo);
  const upstreamC = await namedUpstream(t, 'c');
  const bListen = await freeAddress();
  const cListen = await freeAddress();

  const cli = await startConfigCli(
    t,
    file,
    `listeners:
  - name: a
    listen: 127.0.0.1:0
    targets: [${oldA.address}]
  - name: b
    listen: ${bListen}
    shutdown_timeout: 20s
    targets: [${upstreamB.address}]
`,
    ['a', 'b'],
  );
  const a = addressOf(cli, 'a');
  const b = addressOf(cli, 'b');

  // A stream of numbers through "a", running across the reload.
  const streaming = openClient(t, a);
  await withTimeout(streaming.connected, 2000, 'connecting to a');
  const stream = new SequenceStream(streaming.socket);
  t.after(() => stream.stop());
  const bytesAtOldA = () => receivedByOldA.reduce((n, c) => n + c.length, 0);
  await waitFor(() => bytesAtOldA() >= 200 * 4, 3000, 'numbers to reach the old upstream');

  // A connection on "b", opened before the reload.
  const onB = openClient(t, b);
  await roundTrip(onB, 'before reload');

  const record = await cli.reload(`listeners:
  - name: a
    listen: 127.0.0.1:0
    targets: [${newA.address}]
  - name: c
    listen: ${cListen}
    targets: [${upstreamC.address}]
`);
  const sentAtReload = stream.sent;
  assert.equal(record.msg, 'config reloaded', `reload record: ${JSON.stringify(record)}`);
  assert.deepEqual(
    { added: record.added, removed: record.removed, changed: record.changed },
    { added: ['c'], removed: ['b'], changed: ['a'] },
  );
  const c = await listeningAddress(cli, 'c');

  // New connections to "a" go to the new target; the old one sees no new connection.
  assert.equal(await readAll(t, a), 'new-a');
  assert.equal(newA.sockets.length, 1);
  assert.equal(oldA.sockets.length, 1);
  // "c" works; "b" refuses new clients.
  assert.equal(await readAll(t, c), 'c');
  assert.equal(upstreamC.sockets.length, 1);
  assert.equal(await tryConnect(b), 'ECONNREFUSED');
  // The connection on "b" keeps working while it drains, and ends on its own terms.
  await roundTrip(onB, 'after reload');
  onB.socket.end();
  await withTimeout(onB.closed, 3000, 'the b connection to finish');
  assert.equal(onB.received().toString(), 'before reloadafter reload');
  const bClosed = await cli.waitForRecord(
    (r) => r.msg === 'connection closed' && r.listener === 'b',
    3000,
    'the access record of the b connection',
  );
  assert.equal(bClosed.cause, 'client_fin');

  // Keep streaming a while after the reload, then check every byte, both ways.
  await waitFor(() => stream.sent >= sentAtReload + 200, 3000, 'numbers sent after the reload');
  const count = stream.stop();
  await waitFor(
    () => bytesAtOldA() >= count * 4 && streaming.received().length >= count * 4,
    3000,
    'every number to arrive and come back',
  );
  assertSequence(Buffer.concat(receivedByOldA), count, 'at the upstream');
  assertSequence(streaming.received(), count, 'echoed to the client');
  assert.equal(streaming.isClosed, false);
  assert.equal(closedRecords(cli, 'a').length, 1, 'only the new-a connection closed on a');

  streaming.socket.end();
  const aClosed = await cli.waitForRecord(
    (r) => r.msg === 'connection closed' && r.listener === 'a' && r.cause === 'client_fin',
    3000,
    'the access record of the streaming connection',
  );
  assert.equal(aClosed.bytes_to_upstream, count * 4);
  assert.equal(aClosed.bytes_to_client, count * 4);
  assert.equal(aClosed.upstream, oldA.address);
});

// ---------------------------------------------------------------- 2. refused reloads

test('a reload of a file with an error is refused with its file:line:col, and nothing changes', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proxy.yaml');
  const oldA = await namedUpstream(t, 'old-a');
  const newA = await namedUpstream(t, 'new-a');
  const upstreamB = await namedUpstream(t, 'b');
  const bListen = await freeAddress();
  const cli = await startConfigCli(
    t,
    file,
    `listeners:
  - name: a
    listen: 127.0.0.1:0
    targets: [${oldA.address}]
  - name: b
    listen: ${bListen}
    targets: [${upstreamB.address}]
`,
    ['a', 'b'],
  );

  // New targets for "a", "b" gone, and a misspelt key at line 4, column 5.
  const record = await cli.reload(`listeners:
  - name: a
    listen: 127.0.0.1:0
    idel_timeout: 1s
    targets: [${newA.address}]
`);
  assert.equal(record.msg, 'config reload refused');
  assert.equal(record.level, 'error');
  assert.match(record.reason ?? '', /:4:5 listeners\[0\]\.idel_timeout: unknown field$/);
  assert.ok(record.reason?.startsWith(`${file}:4:5 `), `reason: ${record.reason}`);

  assert.equal(await readAll(t, addressOf(cli, 'a')), 'old-a');
  assert.equal(await readAll(t, addressOf(cli, 'b')), 'b');
  assert.equal(newA.sockets.length, 0);
});

test('a reload whose new address is in use is refused: nothing added, removed or changed', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proxy.yaml');
  const oldA = await namedUpstream(t, 'old-a');
  const newA = await namedUpstream(t, 'new-a');
  const upstreamB = await namedUpstream(t, 'b');
  // Someone else already listens where the new listener "d" wants to.
  const taken = await namedUpstream(t, 'someone else');
  const bListen = await freeAddress();
  const eListen = await freeAddress();
  const first = `listeners:
  - name: a
    listen: 127.0.0.1:0
    targets: [${oldA.address}]
  - name: b
    listen: ${bListen}
    targets: [${upstreamB.address}]
`;
  const cli = await startConfigCli(t, file, first, ['a', 'b']);
  const a = addressOf(cli, 'a');
  const b = addressOf(cli, 'b');

  const record = await cli.reload(`listeners:
  - name: a
    listen: 127.0.0.1:0
    targets: [${newA.address}]
  - name: d
    listen: ${taken.address}
    targets: [${newA.address}]
  - name: e
    listen: ${eListen}
    targets: [${newA.address}]
`);
  assert.equal(record.msg, 'config reload refused');
  assert.equal(record.reason, `listen ${taken.address}: address in use`);

  // "b" (which the file removed) still accepts; "a" still uses its old target.
  assert.equal(await readAll(t, b), 'b');
  assert.equal(await readAll(t, a), 'old-a');
  // Neither new listener is up: "d"'s address is still someone else's, "e" refuses.
  assert.equal(await readAll(t, taken.address), 'someone else');
  assert.equal(await tryConnect(eListen), 'ECONNREFUSED');
  assert.equal(newA.sockets.length, 0);

  // Once the address is free, the same change goes through.
  await new Promise((resolve) => taken.server.close(resolve));
  const again = await cli.reload(readFileSync(file, 'utf8'));
  assert.equal(again.msg, 'config reloaded', `reload record: ${JSON.stringify(again)}`);
  assert.deepEqual(
    { added: again.added, removed: again.removed, changed: again.changed },
    { added: ['d', 'e'], removed: ['b'], changed: ['a'] },
  );
  assert.equal(await readAll(t, a), 'new-a');
  assert.equal(await tryConnect(b), 'ECONNREFUSED');
});

// ---------------------------------------------------------------- 3. Unix domain sockets

test('relays through Unix domain sockets, to and from TCP', async (t) => {
  const dir = tempDir(t);
  const upstreamPath = join(dir, 'up.sock');
  await unixServer(t, upstreamPath, echo);
  const cli = await startConfigCli(
    t,
    join(dir, 'proxy.yaml'),
    `listeners:
  - name: unix
    listen: unix:${join(dir, 'p.sock')}
    targets: [unix:${upstreamPath}]
  - name: tcp
    listen: 127.0.0.1:0
    targets: [unix:${upstreamPath}]
`,
    ['unix', 'tcp'],
  );
  assert.equal(addressOf(cli, 'unix'), `unix:${join(dir, 'p.sock')}`);

  for (const name of ['unix', 'tcp']) {
    const client = openClient(t, addressOf(cli, name));
    await roundTrip(client, `hello over ${name}`);
    await roundTrip(client, 'x'.repeat(100_000));
    client.socket.end();
    await withTimeout(client.closed, 3000, `the ${name} client to close`);
    const closed = await cli.waitForRecord(
      (r) => r.msg === 'connection closed' && r.listener === name,
      3000,
      `the access record on ${name}`,
    );
    assert.equal(closed.cause, 'client_fin');
    assert.equal(closed.upstream, `unix:${upstreamPath}`);
  }
});

const LISTEN_ON_PATH = `
const server = require('node:net').createServer();
server.listen(process.argv[1], () => process.stdout.write('ready\\n'));`;

test('replaces a stale Unix socket file left by a process that died, and starts', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'p.sock');
  // A process that dies without closing its server leaves the socket file behind.
  const child: ChildProcess = spawn(process.execPath, ['-e', LISTEN_ON_PATH, path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await withTimeout(once(child.stdout ?? child, 'data'), 3000, 'the child to listen');
  child.kill('SIGKILL');
  await withTimeout(once(child, 'exit'), 3000, 'the child to die');
  assert.ok(existsSync(path), 'the socket file is left behind');
  assert.equal(await tryConnect(`unix:${path}`), 'ECONNREFUSED');

  await unixServer(t, join(dir, 'up.sock'), echo);
  const cli = await startConfigCli(
    t,
    join(dir, 'proxy.yaml'),
    `listeners:
  - name: p
    listen: unix:${path}
    targets: [unix:${join(dir, 'up.sock')}]
`,
    ['p'],
  );
  const warning = await cli.waitForRecord(
    (r) => r.msg === 'removing stale unix socket',
    1000,
    'the stale socket warning',
  );
  assert.equal(warning.path, path);
  await roundTrip(openClient(t, `unix:${path}`), 'through the new socket');
});

test('does not take over a Unix socket that something still accepts on: exit 1', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'p.sock');
  await unixServer(t, path, (socket) => socket.end('still mine'));
  const file = join(dir, 'proxy.yaml');
  writeFileSync(file, `listeners:\n  - listen: unix:${path}\n    targets: [127.0.0.1:9]\n`);
  const result = await runCli(t, ['--config', file]);
  assert.equal(result.status, 1);
  assert.equal(oneLine(result.stderr), `l4proxy: listen unix:${path}: address in use`);
  assert.equal(await readAll(t, `unix:${path}`), 'still mine');
});

// ---------------------------------------------------------------- 4. proxy check

const EXAMPLE = new URL('../../examples/proxy.yaml', import.meta.url);

test('proxy check --config: a valid file exits 0 with a summary naming each listener', async (t) => {
  const dir = tempDir(t);
  const own = join(dir, 'proxy.yaml');
  writeFileSync(
    own,
    `defaults:
  connect_timeout: 2s
listeners:
  - name: web
    listen: 8080
    targets:
      - 127.0.0.1:9001
      - { address: 127.0.0.1:9002, weight: 3 }
  - name: db
    listen: unix:${join(dir, 'db.sock')}
    idle_timeout: 5m
    targets: [unix:${join(dir, 'pg.sock')}]
`,
  );
  const result = await runCli(t, ['check', '--config', own]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr, '');
  assert.match(result.stdout, new RegExp(`^${escapeRegExp(own)}: ok, 2 listener\\(s\\)\\n`));
  assert.match(
    result.stdout,
    /^ {2}web: \*:8080 -> 127\.0\.0\.1:9001, 127\.0\.0\.1:9002 \(weight 3\)$/m,
  );
  assert.match(
    result.stdout,
    new RegExp(`^  db: unix:${escapeRegExp(join(dir, 'db.sock'))} -> `, 'm'),
  );
  assert.match(result.stdout, /idle 5m, half-close 0, connect 2s, shutdown 30s/);
  // Nothing is started.
  assert.equal(await tryConnect(`unix:${join(dir, 'db.sock')}`), 'ENOENT');
});

test('proxy check --config accepts examples/proxy.yaml and names each of its listeners', async (t) => {
  const file = fileURLToPath(EXAMPLE);
  const { listeners } = parseYaml(readFileSync(file, 'utf8')) as { listeners: { name: string }[] };
  assert.ok(listeners.length > 0);
  const result = await runCli(t, ['check', '--config', file]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr, '');
  assert.match(result.stdout, new RegExp(`: ok, ${listeners.length} listener\\(s\\)\n`));
  for (const { name } of listeners) {
    assert.match(result.stdout, new RegExp(`^  ${escapeRegExp(name)}: \\S+ -> `, 'm'), name);
  }
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('proxy check --config: an error exits 2 with one line naming file:line:col and the field', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'bad.yaml');
  writeFileSync(
    file,
    `listeners:
  - name: a
    listen: 127.0.0.1:0
    idel_timeout: 30s
    targets: [127.0.0.1:9]
`,
  );
  const result = await runCli(t, ['check', '--config', file]);
  assert.equal(result.status, 2);
  assert.equal(result.stdout, '');
  const line = oneLine(result.stderr);
  assert.match(line, /^l4proxy: .*\.yaml:\d+:\d+ listeners\[\d\]\..*/);
  assert.equal(line, `l4proxy: ${file}:4:5 listeners[0].idel_timeout: unknown field`);

  // Running from the same file fails the same way, and starts nothing.
  const run = await runCli(t, ['--config', file]);
  assert.equal(run.status, 2);
  assert.equal(oneLine(run.stderr), line);
});

test('proxy --config: a missing file, or --listen/--target with it, is a usage error (exit 2)', async (t) => {
  const dir = tempDir(t);
  const missing = join(dir, 'nope.yaml');
  const file = join(dir, 'proxy.yaml');
  writeFileSync(file, 'listeners:\n  - listen: 127.0.0.1:0\n    targets: [127.0.0.1:9]\n');
  const cases: [string, string[], RegExp][] = [
    ['check, missing file', ['check', '--config', missing], /no such file/],
    ['run, missing file', ['--config', missing], /no such file/],
    ['--listen with --config', ['--config', file, '--listen', '127.0.0.1:0'], /--listen/],
    ['--target with --config', ['--config', file, '--target', '127.0.0.1:9'], /--target/],
    ['check with --listen', ['check', '--config', file, '-l', '127.0.0.1:0'], /--listen/],
  ];
  const results = await Promise.all(cases.map(([, args]) => runCli(t, args)));
  for (const [i, [name, , says]] of cases.entries()) {
    const result = results[i];
    assert.ok(result !== undefined);
    assert.equal(result.status, 2, `${name}: ${result.stderr}`);
    assert.equal(result.stdout, '', name);
    assert.match(oneLine(result.stderr), new RegExp(`^l4proxy: .*${says.source}`), name);
  }
});

// ---------------------------------------------------------------- 5. flag precedence

test('a command-line flag overrides the file defaults, not a listener’s own value', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proxy.yaml');
  const upstream = await startUpstream(t, echo);
  const ownListen = await freeAddress();
  const text = `defaults:
  idle_timeout: 0
listeners:
  - name: inherits
    listen: 127.0.0.1:0
    targets: [${upstream.address}]
  - name: own
    listen: ${ownListen}
    idle_timeout: 30s
    targets: [${upstream.address}]
`;
  const cli = await startConfigCli(t, file, text, ['inherits', 'own'], ['--idle-timeout', '200ms']);
  const inherits = openClient(t, addressOf(cli, 'inherits'));
  const own = openClient(t, addressOf(cli, 'own'));
  await roundTrip(inherits, 'ping');
  await roundTrip(own, 'ping');
  const idleFrom = Date.now();

  await waitFor(() => inherits.isClosed || inherits.sawEnd, 2000, 'the idle connection to close');
  const elapsedMs = Date.now() - idleFrom;
  assert.ok(elapsedMs < deadline(1500), `closed after ${elapsedMs}ms, expected ~200ms`);
  const closed = await cli.waitForRecord(
    (r) => r.msg === 'connection closed' && r.listener === 'inherits',
    2000,
    'the idle access record',
  );
  assert.equal(closed.cause, 'idle_timeout');
  // Not too early either, by the proxy's own clock: the connection lived at least one
  // 200ms idle period (the test's clock starts later than the proxy's idle timer, so it
  // cannot tell this on a busy machine). 1 ms of slack for timer rounding.
  assert.ok(Number(closed.duration_ms) >= 199, `lived ${closed.duration_ms}ms, expected >= 200ms`);

  // `own` must outlive more 200ms periods. The proxy's own timers measure them, not a
  // sleep: two more `inherits` connections, one after the other, idle out too.
  for (const round of [2, 3]) {
    const next = openClient(t, addressOf(cli, 'inherits'));
    await roundTrip(next, 'ping');
    await waitFor(() => next.isClosed || next.sawEnd, 2000, `idle connection ${round} to close`);
  }
  assert.ok(Date.now() - idleFrom >= 400, 'own was idle for at least two 200ms periods');
  assert.equal(own.isClosed || own.sawEnd, false, 'the listener’s own 30s idle timeout applies');
  assert.deepEqual(closedRecords(cli, 'own'), []);
  await roundTrip(own, 'still here');

  // proxy check shows the same precedence.
  const check = await runCli(t, ['check', '--config', file, '--idle-timeout', '200ms']);
  assert.equal(check.status, 0, check.stderr);
  assert.match(check.stdout, /inherits: .*\n {4}idle 200ms,/);
  assert.match(check.stdout, /own: .*\n {4}idle 30s,/);
});

// ---------------------------------------------------------------- 6. weighted targets

test('weighted targets: weights 3 and 1 share 8 connections 6 and 2', async (t) => {
  const dir = tempDir(t);
  const upstreamA = await namedUpstream(t, 'A');
  const upstreamB = await namedUpstream(t, 'B');
  const cli = await startConfigCli(
    t,
    join(dir, 'proxy.yaml'),
    `listeners:
  - name: weighted
    listen: 127.0.0.1:0
    targets:
      - { address: ${upstreamA.address}, weight: 3 }
      - address: ${upstreamB.address}
        weight: 1
`,
    ['weighted'],
  );
  const served: string[] = [];
  for (let i = 0; i < 8; i++) served.push(await readAll(t, addressOf(cli, 'weighted')));
  assert.equal(served.filter((s) => s === 'A').length, 6, served.join(' '));
  assert.equal(served.filter((s) => s === 'B').length, 2, served.join(' '));
  assert.equal(upstreamA.sockets.length, 6);
  assert.equal(upstreamB.sockets.length, 2);
});

test('a reload that changes idle_timeout leaves open connections on the value they started with', async (t) => {
  const dir = tempDir(t);
  const upstream = await startUpstream(t, echo);
  const text = (idle: string): string => `listeners:
  - name: a
    listen: 127.0.0.1:0
    idle_timeout: ${idle}
    targets: [${upstream.address}]
`;
  const cli = await startConfigCli(t, join(dir, 'proxy.yaml'), text('600ms'), ['a']);
  const open = openClient(t, addressOf(cli, 'a'));
  await roundTrip(open, 'before');
  const idleFrom = Date.now();
  const record = await cli.reload(text('20s'));
  assert.deepEqual(record.changed, ['a']);
  const fresh = openClient(t, addressOf(cli, 'a'));
  await roundTrip(fresh, 'new');
  // The connection opened before the reload still idles out after 600ms...
  await waitFor(() => open.isClosed || open.sawEnd, 1500, 'the old connection to idle out');
  const elapsedMs = Date.now() - idleFrom;
  assert.ok(elapsedMs < deadline(1500), `closed after ${elapsedMs}ms, expected ~600ms`);
  // The record is written before the socket closes, but reading the proxy's stderr may lag.
  await waitFor(() => closedRecords(cli, 'a').length > 0, 2000, 'the access record');
  assert.deepEqual(
    closedRecords(cli, 'a').map((r) => r.cause),
    ['idle_timeout'],
  );
  // ...while the new one has 20s.
  assert.equal(fresh.isClosed || fresh.sawEnd, false);
});

test('a reload that renames a listener keeps serving its address under the new name', async (t) => {
  const dir = tempDir(t);
  const upstream = await namedUpstream(t, 'up');
  const listen = await freeAddress();
  const text = (name: string): string => `listeners:
  - name: ${name}
    listen: ${listen}
    targets: [${upstream.address}]
`;
  const cli = await startConfigCli(t, join(dir, 'proxy.yaml'), text('old'), ['old']);
  const record = await cli.reload(text('new'));
  assert.equal(record.msg, 'config reloaded', `reload record: ${JSON.stringify(record)}`);
  assert.deepEqual(
    { added: record.added, removed: record.removed },
    { added: ['new'], removed: ['old'] },
  );
  assert.equal(await readAll(t, listen), 'up');
});
