/**
 * `l4proxy --config FILE --watch-config` end to end: the built CLI (dist/cli.js) runs
 * with a config file that the tests change the ways it changes in real life: a
 * Kubernetes ConfigMap update (the kubelet's symlink swap, test/helpers/config-map.ts),
 * plain writes in a burst, an editor's write-then-rename, a `touch`, a file that goes
 * missing. Traffic through the proxy shows which configuration serves. Build first
 * (`npm run build`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type CliChild, type LogRecord, runCli, spawnCli, withTimeout } from '../helpers/cli.js';
import { createConfigMapVolume } from '../helpers/config-map.js';
import { refusedAddress, startUpstream, waitFor } from '../helpers/net.js';

// ---------------------------------------------------------------- helpers

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** NamedUpstream answers each connection with its name after the client's FIN, and keeps what it received. */
interface NamedUpstream {
  address: string;
  received(): string;
}

async function namedUpstream(t: TestContext, name: string): Promise<NamedUpstream> {
  let received = '';
  const upstream = await startUpstream(t, (socket) => {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      received += text;
    });
    socket.on('end', () => socket.end(name));
  });
  return { address: upstream.address, received: () => received };
}

/** send connects to `address`, sends `payload` and FIN, and returns the whole reply. */
async function send(address: string, payload: string): Promise<string> {
  const match = /^(.*):(\d+)$/.exec(address);
  assert.ok(match !== null, `not an address: ${address}`);
  const socket = netConnect({ host: match[1] as string, port: Number(match[2]) });
  let reply = '';
  socket.setEncoding('utf8').on('data', (text: string) => {
    reply += text;
  });
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
  socket.end(payload);
  try {
    await withTimeout(closed, 3000, `the reply from ${address}`);
  } finally {
    socket.destroy();
  }
  return reply;
}

/** through sends a fresh payload via `address` and checks that `upstream` got it and answered. */
async function assertServedBy(
  address: string,
  upstream: NamedUpstream,
  name: string,
): Promise<void> {
  const payload = `to-${name}-${Math.random().toString(36).slice(2)};`;
  assert.equal(await send(address, payload), name, `a connection to ${address}`);
  assert.ok(upstream.received().includes(payload), `${name} did not receive ${payload}`);
}

/** config is a config file: listener `a` (and more) on 127.0.0.1:0. */
function config(target: string, extra = ''): string {
  return `listeners:
  - name: a
    listen: 127.0.0.1:0
    targets: [${target}]
${extra}`;
}

const isReload = (r: LogRecord): boolean =>
  r.msg === 'config reloaded' || r.msg === 'config reload refused';

/** WatchingCli is the CLI started with --watch-config, and where listener `a` listens. */
interface WatchingCli extends CliChild {
  a: string;
  reloads(): LogRecord[];
  /** nthReload waits for the n-th (1-based) reload record and returns it. */
  nthReload(n: number): Promise<LogRecord>;
}

async function startWatching(
  t: TestContext,
  file: string,
  more: readonly string[] = [],
): Promise<WatchingCli> {
  const cli = spawnCli(t, [
    '--config',
    file,
    '--watch-config',
    '--log-format',
    'json',
    '--log-level',
    'debug',
    ...more,
  ]);
  const listening = await cli.waitForRecord(
    (r) => r.msg === 'listening' && r.listener === 'a',
    10_000,
    'listener a to listen',
  );
  // Changes made from here on are seen: the watch starts before this record.
  await cli.waitForRecord((r) => r.msg === 'watching config file', 5000, 'the watch to start');
  const reloads = (): LogRecord[] => cli.records().filter(isReload);
  return Object.assign(cli, {
    a: listening.address ?? '',
    reloads,
    async nthReload(n: number): Promise<LogRecord> {
      await cli.waitForRecord(() => reloads().length >= n, 5000, `reload record #${n}`);
      return reloads()[n - 1] as LogRecord;
    },
  });
}

// ---------------------------------------------------------------- Kubernetes

test('a ConfigMap update (the kubelet symlink swap) is applied: new connections reach the new targets', async (t) => {
  const one = await namedUpstream(t, 'one');
  const two = await namedUpstream(t, 'two');
  const three = await namedUpstream(t, 'three');
  const volume = createConfigMapVolume(join(tempDir(t), 'config'), {
    'config.yaml': config(one.address),
  });
  const cli = await startWatching(t, volume.path('config.yaml'));
  await assertServedBy(cli.a, one, 'one');

  const bListen = await refusedAddress();
  volume.update({
    'config.yaml': config(
      two.address,
      `  - name: b
    listen: ${bListen}
    targets: [${three.address}]
`,
    ),
  });
  const first = await cli.nthReload(1);
  assert.equal(first.msg, 'config reloaded', JSON.stringify(first));
  assert.deepEqual([first.added, first.changed], [['b'], ['a']]);
  await assertServedBy(cli.a, two, 'two');
  const b = await cli.waitForRecord((r) => r.msg === 'listening' && r.listener === 'b');
  await assertServedBy(b.address ?? '', three, 'three');

  // The directory the first file lived in is gone now; the watch must still see the next swap.
  volume.update({ 'config.yaml': config(one.address) });
  const second = await cli.nthReload(2);
  assert.equal(second.msg, 'config reloaded', JSON.stringify(second));
  assert.deepEqual([second.removed, second.changed], [['b'], ['a']]);
  await assertServedBy(cli.a, one, 'one');
  assert.equal(cli.reloads().length, 2);
});

test('a ConfigMap update with an error is refused and the old configuration keeps serving', async (t) => {
  const one = await namedUpstream(t, 'one');
  const two = await namedUpstream(t, 'two');
  const volume = createConfigMapVolume(join(tempDir(t), 'config'), {
    'config.yaml': config(one.address),
  });
  const cli = await startWatching(t, volume.path('config.yaml'));

  volume.update({ 'config.yaml': config(two.address, '    idel_timeout: 1s\n') });
  const refused = await cli.nthReload(1);
  assert.equal(refused.msg, 'config reload refused');
  assert.equal(refused.level, 'error');
  assert.match(refused.reason ?? '', /listeners\[0\]\.idel_timeout: unknown field$/);
  await assertServedBy(cli.a, one, 'one');
  assert.equal(two.received(), '');
  assert.equal(cli.exit, null);

  // Fixed: the next update is applied.
  volume.update({ 'config.yaml': config(two.address) });
  assert.equal((await cli.nthReload(2)).msg, 'config reloaded');
  await assertServedBy(cli.a, two, 'two');
});

// ---------------------------------------------------------------- plain files

test('a burst of writes gives one reload of the last content; an editor-style rename is seen', async (t) => {
  const one = await namedUpstream(t, 'one');
  const two = await namedUpstream(t, 'two');
  const file = join(tempDir(t), 'l4proxy.yaml');
  writeFileSync(file, config(one.address));
  const cli = await startWatching(t, file);

  // Five writes at once: the first four name a target nobody listens on.
  for (let i = 1; i <= 4; i++) writeFileSync(file, config(`127.0.0.1:${i}`));
  writeFileSync(file, config(two.address));
  const record = await cli.nthReload(1);
  assert.equal(record.msg, 'config reloaded', JSON.stringify(record));
  await assertServedBy(cli.a, two, 'two');

  // An editor writes a temporary file and renames it over the config file.
  const markerListen = await refusedAddress();
  const temporary = `${file}.tmp~`;
  writeFileSync(
    temporary,
    config(
      two.address,
      `  - name: marker\n    listen: ${markerListen}\n    targets: [127.0.0.1:1]\n`,
    ),
  );
  renameSync(temporary, file);
  const marker = await cli.nthReload(2);
  assert.deepEqual(marker.added, ['marker'], JSON.stringify(marker));
  // Exactly one reload for the burst: the marker's is the second record.
  assert.equal(cli.reloads().length, 2, JSON.stringify(cli.reloads()));
  assert.equal(cli.records().filter((r) => r.msg === 'config file changed').length, 2);
});

test('a touch or a ConfigMap swap to the same content reloads nothing', async (t) => {
  const one = await namedUpstream(t, 'one');
  const two = await namedUpstream(t, 'two');
  const text = config(one.address);
  const volume = createConfigMapVolume(join(tempDir(t), 'config'), { 'config.yaml': text });
  const cli = await startWatching(t, volume.path('config.yaml'));
  const unchanged = (): number =>
    cli.records().filter((r) => r.msg === 'config file unchanged').length;

  const later = new Date(Date.now() + 60_000);
  utimesSync(volume.path('config.yaml'), later, later);
  await waitFor(() => unchanged() >= 1, 5000, 'the check after the touch');
  volume.update({ 'config.yaml': text });
  await waitFor(() => unchanged() >= 2, 5000, 'the check after the same-content swap');
  assert.deepEqual(cli.reloads(), []);
  await assertServedBy(cli.a, one, 'one');

  // Still watching: a real change is applied, once.
  volume.update({ 'config.yaml': config(two.address) });
  assert.equal((await cli.nthReload(1)).msg, 'config reloaded');
  await assertServedBy(cli.a, two, 'two');
  assert.equal(cli.reloads().length, 1);
});

test('a config file that goes missing is a warning; the proxy serves on and applies it when it is back', async (t) => {
  const one = await namedUpstream(t, 'one');
  const two = await namedUpstream(t, 'two');
  const file = join(tempDir(t), 'l4proxy.yaml');
  writeFileSync(file, config(one.address));
  const cli = await startWatching(t, file);

  rmSync(file);
  const warning = await cli.waitForRecord((r) => r.msg === 'config file unreadable');
  assert.equal(warning.level, 'warn');
  assert.equal(warning.code, 'ENOENT');
  await assertServedBy(cli.a, one, 'one');
  assert.deepEqual(cli.reloads(), []);

  writeFileSync(file, config(two.address));
  assert.equal((await cli.nthReload(1)).msg, 'config reloaded');
  await assertServedBy(cli.a, two, 'two');
});

// ---------------------------------------------------------------- workers, usage

test('with --workers 2 the primary watches and every worker reloads once', async (t) => {
  const one = await namedUpstream(t, 'one');
  const two = await namedUpstream(t, 'two');
  const volume = createConfigMapVolume(join(tempDir(t), 'config'), {
    'config.yaml': config(one.address),
  });
  const cli = await startWatching(t, volume.path('config.yaml'), ['--workers', '2']);
  const workerPids = cli
    .records()
    .filter((r) => r.msg === 'worker started')
    .map((r) => (r as LogRecord & { pid: number }).pid);
  t.after(() => {
    for (const pid of workerPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone with the primary
      }
    }
  });
  await cli.waitForRecord((r) => r.msg === 'workers listening', 10_000, 'every worker');

  volume.update({ 'config.yaml': config(two.address) });
  await waitFor(() => cli.reloads().length >= 2, 5000, 'a reload record from each worker');
  const workers = cli.reloads().map((r) => (r as LogRecord & { worker?: number }).worker);
  assert.deepEqual([...workers].sort(), [1, 2], JSON.stringify(cli.reloads()));
  assert.ok(cli.reloads().every((r) => r.msg === 'config reloaded'));
  const changed = cli.records().filter((r) => r.msg === 'config file changed');
  assert.equal(changed.length, 1, 'the primary alone watches');
  for (let i = 0; i < 4; i++) await assertServedBy(cli.a, two, 'two');
});

test('--watch-config without --config is a usage error: one line, exit 2', async (t) => {
  for (const args of [
    ['--watch-config'],
    ['-l', '127.0.0.1:0', '-t', '127.0.0.1:1', '--watch-config'],
  ]) {
    const result = await runCli(t, args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(
      result.stderr,
      'l4proxy: --watch-config needs --config FILE (there is no file to watch)\n',
    );
  }
});
