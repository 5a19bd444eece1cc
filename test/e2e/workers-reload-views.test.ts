/**
 * With `--workers 2`, the admin API in the primary merges the workers' answers: a
 * listener a reload removed still shows (`state: "removing"`) in /api/listeners and
 * /metrics while its connection drains in a worker, as /api/connections lists it,
 * and disappears from all of them when it closes. Runs dist/cli.js.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type LogRecord, spawnCli } from '../helpers/cli.js';
import { connectClient, echo, refusedAddress, startUpstream, waitFor } from '../helpers/net.js';
import { deadline } from '../helpers/time.js';

/** eventually retries the async `check` every 20 ms until it passes (bounded by `deadline`). */
async function eventually(check: () => Promise<void>, timeoutMs = 5000): Promise<void> {
  const endMs = Date.now() + deadline(timeoutMs);
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > endMs) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

interface ListenerJson {
  name: string;
  state: string;
  address: string;
  connections_active: number;
}

test('--workers 2: a removed listener counts its draining connection in every admin view', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-views-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'proxy.yaml');
  const upstream = await startUpstream(t, echo);
  // Two listeners may not both say 127.0.0.1:0: `old` takes a port just freed.
  const oldListen = await refusedAddress();
  const listener = (name: string) =>
    `  - name: ${name}\n    listen: ${name === 'old' ? oldListen : '127.0.0.1:0'}\n    targets: [${upstream.address}]\n`;
  const text = (names: string[]) =>
    `admin:\n  listen: 127.0.0.1:0\nworkers: 2\nlisteners:\n${names.map(listener).join('')}`;
  writeFileSync(file, text(['web', 'old']));
  const cli = spawnCli(t, ['--config', file, '--log-format', 'json']);
  t.after(() => {
    for (const r of cli.records() as (LogRecord & { pid?: number })[]) {
      if (r.msg !== 'worker started' || r.pid === undefined) continue;
      try {
        process.kill(r.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  await cli.waitForRecord((r) => r.msg === 'workers listening', 10_000, 'every worker to listen');
  const admin = `http://${(await cli.waitForRecord((r) => r.msg === 'admin listening')).address}`;
  const get = async <T>(path: string): Promise<T> => (await fetch(`${admin}${path}`)).json() as T;
  const views = async () => ({
    listeners: (await get<ListenerJson[]>('/api/listeners')).map((l) => [
      l.name,
      l.state,
      l.connections_active,
    ]),
    connections: (await get<unknown[]>('/api/connections')).length,
    metric: (await (await fetch(`${admin}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith('proxy_connections_active{'))
      .sort(),
  });

  const old = (await get<ListenerJson[]>('/api/listeners')).find((l) => l.name === 'old');
  const port = Number(/:(\d+)$/.exec(old?.address ?? '')?.[1]);
  const client = connectClient(port);
  t.after(() => client.socket.destroy());
  client.socket.write('ping');
  await waitFor(() => client.received().toString() === 'ping', 5000, 'the echo through old');

  writeFileSync(file, text(['web']));
  const reload = await fetch(`${admin}/api/reload`, { method: 'POST' });
  assert.equal(reload.status, 200);
  assert.deepEqual(await reload.json(), { added: [], removed: ['old'], changed: [] });
  await eventually(async () =>
    assert.deepEqual(await views(), {
      listeners: [
        ['web', 'serving', 0],
        ['old', 'removing', 1],
      ],
      connections: 1,
      metric: [
        'proxy_connections_active{listener="old"} 1',
        'proxy_connections_active{listener="web"} 0',
      ],
    }),
  );

  client.socket.end();
  await client.closed;
  await eventually(async () =>
    assert.deepEqual(await views(), {
      listeners: [['web', 'serving', 0]],
      connections: 0,
      metric: ['proxy_connections_active{listener="web"} 0'],
    }),
  );
});
