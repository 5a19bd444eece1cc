/**
 * How the workers of `--workers N` get their connections (src/worker-accept.ts), end
 * to end with the built CLI: on a Node.js with `reusePort` each worker binds its own
 * listening socket, so the port has one LISTEN socket per worker in /proc/net/tcp;
 * with `L4PROXY_WORKER_ACCEPT=handover` (and on a Node.js without it) the primary holds
 * the only one and hands connections over. Either way both workers serve, as the
 * `worker` field of the access records shows. Build first (`npm run build`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { probeReusePort } from '../../src/worker-accept.js';
import { type CliChild, type LogRecord, runCli, spawnCli, withTimeout } from '../helpers/cli.js';
import { connectClient, echo, refusedAddress, startUpstream, waitFor } from '../helpers/net.js';

/** REUSE_PORT: this Node.js (the one the CLI runs on, too) can listen with reusePort. */
const REUSE_PORT = await probeReusePort();
const needsReusePort = REUSE_PORT ? {} : { skip: 'this Node.js has no reusePort' };

type WorkerRecord = LogRecord & { worker?: number; pid?: number; accept?: string };

/** freeAddress is 127.0.0.1:PORT with a port just freed: port 0 would take the handover path. */
const freeAddress = refusedAddress;

function portOf(address: string): number {
  return Number(/:(\d+)$/.exec(address)?.[1]);
}

/** listenSockets counts the sockets in state LISTEN on 127.0.0.1:`port` (Linux /proc). */
function listenSockets(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .filter((line) => {
      const [, address, , state] = line.trim().split(/\s+/);
      return address === local && state === '0A';
    }).length;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** startWorkers runs the CLI as a primary with `args` and `env`, until every worker listens. */
async function startWorkers(
  t: TestContext,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliChild & { records(): WorkerRecord[]; accept: string | undefined }> {
  const cli = spawnCli(t, [...args, '--log-format', 'json'], { env: { ...process.env, ...env } });
  t.after(() => {
    for (const r of cli.records() as WorkerRecord[]) {
      if (r.msg === 'worker started' && r.pid !== undefined) killQuietly(r.pid);
    }
  });
  const listening = await cli.waitForRecord(
    (r) => r.msg === 'workers listening',
    10_000,
    'every worker to listen',
  );
  const accept = (listening as WorkerRecord).accept;
  const records = cli.records;
  return Object.assign(cli, { records: () => records() as WorkerRecord[], accept });
}

/**
 * servingWorkers opens one echoed connection at a time to `port` until the access
 * records name both workers (at most 200 connections) and returns the ids seen.
 */
async function servingWorkers(
  t: TestContext,
  cli: { records(): WorkerRecord[] },
  port: number,
): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < 200 && seen.size < 2; i++) {
    const client = connectClient(port);
    t.after(() => client.socket.destroy());
    client.socket.end(`hello ${i}`);
    await withTimeout(client.closed, 5000, 'the echo');
    assert.equal(client.received().toString(), `hello ${i}`);
    await waitFor(
      () => cli.records().filter((r) => r.msg === 'connection closed').length === i + 1,
      5000,
      `access record ${i + 1}`,
    );
    for (const r of cli.records()) {
      if (r.msg === 'connection closed' && r.worker !== undefined) seen.add(r.worker);
    }
  }
  return seen;
}

test(
  'with reusePort each worker listens on its own socket, and both accept connections',
  needsReusePort,
  async (t) => {
    const upstream = await startUpstream(t, echo);
    const listen = await freeAddress();
    const cli = await startWorkers(t, ['--workers', '2', '-l', listen, '-t', upstream.address]);
    assert.equal(cli.accept, 'reuseport', 'the default where reusePort works');
    assert.equal(listenSockets(portOf(listen)), 2, 'one listening socket per worker');
    assert.deepEqual([...(await servingWorkers(t, cli, portOf(listen)))].sort(), [1, 2]);
  },
);

test('L4PROXY_WORKER_ACCEPT=handover: the primary listens alone and hands connections to both workers', async (t) => {
  const upstream = await startUpstream(t, echo);
  const listen = await freeAddress();
  const cli = await startWorkers(t, ['--workers', '2', '-l', listen, '-t', upstream.address], {
    L4PROXY_WORKER_ACCEPT: 'handover',
  });
  assert.equal(cli.accept, 'handover');
  assert.equal(listenSockets(portOf(listen)), 1, "the primary's socket only");
  assert.deepEqual([...(await servingWorkers(t, cli, portOf(listen)))].sort(), [1, 2]);
});

test(
  'a listener on port 0 is handed over even with reusePort: one port for all workers',
  needsReusePort,
  async (t) => {
    const upstream = await startUpstream(t, echo);
    const cli = await startWorkers(t, [
      '--workers',
      '2',
      '-l',
      '127.0.0.1:0',
      '-t',
      upstream.address,
    ]);
    assert.equal(cli.accept, 'reuseport');
    await waitFor(
      () => cli.records().filter((r) => r.msg === 'listening').length === 2,
      5000,
      'both listening records',
    );
    const addresses = new Set(
      cli
        .records()
        .filter((r) => r.msg === 'listening')
        .map((r) => r.address),
    );
    assert.equal(addresses.size, 1, `one address: ${[...addresses].join(', ')}`);
    const port = portOf([...addresses][0] ?? '');
    assert.equal(listenSockets(port), 1, "the primary's socket only");
    assert.deepEqual([...(await servingWorkers(t, cli, port))].sort(), [1, 2]);
  },
);

test(
  'a listener added by a reload is bound by each worker with reusePort; a removed one is closed',
  needsReusePort,
  async (t) => {
    const upstream = await startUpstream(t, echo);
    const [first, second] = [await freeAddress(), await freeAddress()];
    const dir = mkdtempSync(join(tmpdir(), 'proxy-accept-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'proxy.yaml');
    const config = (listen: string): string =>
      `workers: 2\nlisteners:\n  - name: web\n    listen: ${listen}\n    targets: [${upstream.address}]\n`;
    writeFileSync(file, config(first));
    const cli = await startWorkers(t, ['--config', file]);
    assert.equal(listenSockets(portOf(first)), 2);

    writeFileSync(file, config(second));
    process.kill(cli.child.pid as number, 'SIGHUP');
    await waitFor(
      () => cli.records().filter((r) => r.msg === 'config reloaded').length === 2,
      5000,
      'a config reloaded record per worker',
    );
    await waitFor(() => listenSockets(portOf(first)) === 0, 5000, 'the old address closed');
    assert.equal(listenSockets(portOf(second)), 2, 'one listening socket per worker');
    assert.deepEqual([...(await servingWorkers(t, cli, portOf(second)))].sort(), [1, 2]);
  },
);

test('L4PROXY_WORKER_ACCEPT=reuseport where reusePort does not work warns once and hands over', {
  skip: REUSE_PORT && 'this Node.js has reusePort',
}, async (t) => {
  const upstream = await startUpstream(t, echo);
  const listen = await freeAddress();
  const cli = await startWorkers(t, ['--workers', '2', '-l', listen, '-t', upstream.address], {
    L4PROXY_WORKER_ACCEPT: 'reuseport',
  });
  assert.equal(cli.accept, 'handover');
  const warnings = cli.records().filter((r) => r.level === 'warn');
  assert.equal(warnings.length, 1, cli.stderr());
  assert.match(
    warnings[0]?.msg ?? '',
    /^L4PROXY_WORKER_ACCEPT=reuseport: .*hands connections over/,
  );
  assert.deepEqual([...(await servingWorkers(t, cli, portOf(listen)))].sort(), [1, 2]);
});

test('a bad L4PROXY_WORKER_ACCEPT exits 2 with one line naming the variable', async (t) => {
  const cli = spawnCli(t, ['--workers', '2', '-l', '127.0.0.1:0', '-t', '127.0.0.1:9'], {
    env: { ...process.env, L4PROXY_WORKER_ACCEPT: 'kernel' },
  });
  const exit = await cli.waitForExit(5000);
  assert.equal(exit.status, 2, cli.stderr());
  assert.equal(
    cli.stderr(),
    'l4proxy: L4PROXY_WORKER_ACCEPT: expected reuseport or handover, got "kernel"\n',
  );
});

test('an address in use exits 1 with one line under reusePort too', needsReusePort, async (t) => {
  const blocker = await startUpstream(t);
  const result = await runCli(t, ['--workers', '2', '-l', blocker.address, '-t', '127.0.0.1:9']);
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.stderr, `l4proxy: listen ${blocker.address}: address in use\n`);
});

test(
  'a second proxy on the address of a running one exits 1 instead of joining its sockets',
  needsReusePort,
  async (t) => {
    const upstream = await startUpstream(t, echo);
    const listen = await freeAddress();
    const first = await startWorkers(t, ['--workers', '2', '-l', listen, '-t', upstream.address]);
    assert.equal(first.accept, 'reuseport');
    const second = await runCli(t, ['--workers', '2', '-l', listen, '-t', upstream.address]);
    assert.equal(second.status, 1, second.stderr);
    assert.equal(second.stderr, `l4proxy: listen ${listen}: address in use\n`);
    assert.equal(listenSockets(portOf(listen)), 2, "the first proxy's sockets only");
  },
);
