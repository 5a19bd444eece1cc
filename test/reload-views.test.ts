/**
 * The views of a reload agree: while a listener a reload removed still drains its
 * open connections, `connections()`, `stats()`, `/metrics` and `/api/listeners` all
 * count them (the listener shows as `state: "removing"`); when the last one closes,
 * all drop to zero and the listener disappears. Library API, an AdminServer on
 * 127.0.0.1:0, real sockets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdminServer, createProxy } from '../src/index.js';
import { connectClient, echo, startUpstream, waitFor } from './helpers/net.js';
import { deadline } from './helpers/time.js';

/** eventually retries the async `check` every 10 ms until it passes (bounded by `deadline`). */
async function eventually(check: () => Promise<void>, timeoutMs = 5000): Promise<void> {
  const endMs = Date.now() + deadline(timeoutMs);
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > endMs) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

interface ListenerJson {
  name: string;
  state: string;
  connections_active: number;
}

test('a removed listener counts its draining connections in every view until they close', async (t) => {
  const upstream = await startUpstream(t, echo);
  const listener = (name: string) => ({
    name,
    listen: '127.0.0.1:0',
    targets: [upstream.address],
    shutdownTimeoutMs: 30_000,
  });
  const proxy = createProxy({ listeners: [listener('a'), listener('b')] });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
  await admin.listen();
  t.after(() => admin.close());
  const base = `http://127.0.0.1:${admin.address()?.port}`;
  const portB = proxy.addresses()['b']?.port;
  assert.ok(portB !== undefined);

  const client = connectClient(portB);
  t.after(() => client.socket.destroy());
  client.socket.write('ping');
  await waitFor(() => client.received().toString() === 'ping', 5000, 'the echo through b');

  const result = await proxy.reload({ listeners: [listener('a')] });
  assert.deepEqual(result.removed, ['b']);

  const listeners = async () =>
    (await (await fetch(`${base}/api/listeners`)).json()) as ListenerJson[];
  const metric = async (name: string) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`proxy_connections_active{listener="${name}"}`));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };

  // While b drains, every view counts its one connection.
  assert.equal(proxy.connections().length, 1);
  assert.equal(proxy.connections()[0]?.listener, 'b');
  assert.equal(proxy.stats().active, 1);
  assert.equal(proxy.stats().listeners['b']?.active, 1);
  const during = await listeners();
  assert.deepEqual(
    during.map((l) => [l.name, l.state, l.connections_active]),
    [
      ['a', 'serving', 0],
      ['b', 'removing', 1],
    ],
  );
  assert.equal(await metric('b'), 1);
  assert.equal(await metric('a'), 0);

  // Its last connection closes: all drop to zero and b is gone.
  client.socket.end();
  await client.closed;
  await waitFor(() => proxy.connections().length === 0, 5000, 'the connection to close');
  await eventually(async () => {
    assert.equal(proxy.stats().active, 0);
    assert.equal(proxy.stats().listeners['b'], undefined);
    assert.deepEqual(
      (await listeners()).map((l) => [l.name, l.state, l.connections_active]),
      [['a', 'serving', 0]],
    );
    assert.equal(await metric('b'), undefined);
    assert.equal(await metric('a'), 0);
  });
});

test('a listener re-added while its old self drains serves anew; its name counts both', async (t) => {
  const upstream = await startUpstream(t, echo);
  const listener = (name: string) => ({
    name,
    listen: '127.0.0.1:0',
    targets: [upstream.address],
    shutdownTimeoutMs: 30_000,
  });
  // a stays throughout: a proxy keeps at least one listener.
  const proxy = createProxy({ listeners: [listener('a'), listener('b')] });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
  await admin.listen();
  t.after(() => admin.close());
  const base = `http://127.0.0.1:${admin.address()?.port}`;
  const listeners = async () =>
    ((await (await fetch(`${base}/api/listeners`)).json()) as ListenerJson[])
      .filter((l) => l.name === 'b')
      .map((l) => [l.name, l.state, l.connections_active]);
  const oldPort = proxy.addresses()['b']?.port;
  assert.ok(oldPort !== undefined);

  const old = connectClient(oldPort);
  t.after(() => old.socket.destroy());
  old.socket.write('old');
  await waitFor(() => old.received().toString() === 'old', 5000, 'the echo through the old b');

  await proxy.reload({ listeners: [listener('a')] });
  assert.deepEqual(await listeners(), [['b', 'removing', 1]]);
  // Back again while the old b still drains: a new listener on a new port.
  const result = await proxy.reload({ listeners: [listener('a'), listener('b')] });
  assert.deepEqual(result.added, ['b']);
  const newPort = proxy.addresses()['b']?.port;
  assert.ok(newPort !== undefined && newPort !== oldPort);
  assert.deepEqual(await listeners(), [['b', 'serving', 1]]);

  const fresh = connectClient(newPort);
  t.after(() => fresh.socket.destroy());
  fresh.socket.write('new');
  await waitFor(() => fresh.received().toString() === 'new', 5000, 'the echo through the new b');
  assert.equal(proxy.connections().length, 2);
  assert.equal(proxy.stats().listeners['b']?.active, 2);
  assert.deepEqual(await listeners(), [['b', 'serving', 2]]);

  // The old connection ends: only the new listener's remains, under the same name.
  old.socket.end();
  await old.closed;
  await eventually(async () => {
    assert.equal(proxy.stats().listeners['b']?.active, 1);
    assert.deepEqual(await listeners(), [['b', 'serving', 1]]);
  });
  // The old port no longer accepts; the new one does.
  await assert.rejects(
    new Promise((resolve, reject) => {
      const probe = connectClient(oldPort).socket;
      probe.once('connect', () => resolve(probe.destroy()));
      probe.once('error', reject);
    }),
    { code: 'ECONNREFUSED' },
  );
});
