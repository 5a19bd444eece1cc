/**
 * Per-target state and open connections as the admin API and /metrics show them,
 * against real sockets: `state` (`up`, `drained`), `connections` matching the
 * proxy's own connections(), and the proxy_target_up / proxy_target_connections gauges.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { AdminServer, createProxy, type TcpProxy } from '../src/index.js';
import { blackholeAddress, connectClient, echo, startUpstream, waitFor } from './helpers/net.js';

interface TargetJson {
  address: string;
  state: string;
  connections: number;
}

async function start(
  t: TestContext,
): Promise<{ proxy: TcpProxy; base: string; port: number; a: string; b: string }> {
  const a = await startUpstream(t, echo);
  const b = await startUpstream(t, echo);
  const proxy = createProxy({
    listeners: [{ name: 'web', listen: '127.0.0.1:0', targets: [a.address, b.address] }],
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
  await admin.listen();
  t.after(() => admin.close());
  const port = proxy.addresses()['web']?.port;
  assert.ok(port !== undefined);
  return {
    proxy,
    base: `http://127.0.0.1:${admin.address()?.port}`,
    port,
    a: a.address,
    b: b.address,
  };
}

async function targets(base: string): Promise<TargetJson[]> {
  const [web] = (await (await fetch(`${base}/api/listeners`)).json()) as {
    targets: TargetJson[];
  }[];
  assert.ok(web);
  return web.targets;
}

/** gauge reads one proxy_target_* sample for the listener `web` from /metrics. */
async function gauge(base: string, name: string, target: string): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{listener="web",target="([^"]+)"\} (\S+)$/.exec(line);
    if (m?.[1] === name && m[2] === target) return Number(m[3]);
  }
  return undefined;
}

/** openCount is how many of the proxy's open connections reached `target`. */
function openCount(proxy: TcpProxy, target: string): number {
  return proxy.connections().filter((c) => c.upstream === target).length;
}

test('each target shows its state and the connections open to it, as connections() counts them', async (t) => {
  const { proxy, base, port, a, b } = await start(t);
  // Round-robin: four clients, two on each target.
  const clients = [];
  for (let i = 0; i < 4; i++) {
    const client = connectClient(port);
    t.after(() => client.socket.destroy());
    client.socket.write('x');
    await waitFor(() => client.received().length === 1, 5000, `echo ${i}`);
    clients.push(client);
  }
  assert.equal(openCount(proxy, a), 2);
  assert.equal(openCount(proxy, b), 2);
  assert.deepEqual(
    (await targets(base)).map((x) => [x.address, x.state, x.connections]),
    [
      [a, 'up', 2],
      [b, 'up', 2],
    ],
  );
  assert.equal(await gauge(base, 'proxy_target_connections', a), 2);
  assert.equal(await gauge(base, 'proxy_target_up', a), 1);

  // Closing connections counts them down, to what connections() still holds.
  for (const client of clients.slice(0, 3)) {
    client.socket.end();
    await client.closed;
  }
  await waitFor(() => proxy.connections().length === 1, 5000, 'three connections closed');
  const open = proxy.connections()[0]?.upstream;
  // The pool counts down in the same step that removes the connection from connections().
  assert.deepEqual(
    (await targets(base)).map((x) => x.connections),
    [a, b].map((x) => (x === open ? 1 : 0)),
  );
  assert.equal(await gauge(base, 'proxy_target_connections', open ?? ''), 1);

  // Drained: state `drained`, proxy_target_up 0; its open connection still counts.
  assert.equal(
    (
      await fetch(`${base}/api/listeners/web/targets/${encodeURIComponent(b)}/drain`, {
        method: 'POST',
      })
    ).status,
    200,
  );
  const drained = (await targets(base)).find((x) => x.address === b);
  assert.equal(drained?.state, 'drained');
  assert.equal(drained?.connections, openCount(proxy, b));
  assert.equal(await gauge(base, 'proxy_target_up', b), 0);
  assert.equal(await gauge(base, 'proxy_target_up', a), 1);
});

test('a connection closed while dialing its target is not counted on it', async (t) => {
  const target = await blackholeAddress(t);
  const proxy = createProxy({
    listeners: [
      { name: 'web', listen: '127.0.0.1:0', targets: [target], connectTimeoutMs: 30_000 },
    ],
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
  await admin.listen();
  t.after(() => admin.close());
  const base = `http://127.0.0.1:${admin.address()?.port}`;
  const client = connectClient(proxy.addresses()['web']?.port ?? 0);
  t.after(() => client.socket.destroy());
  await waitFor(() => proxy.connections().length === 1, 5000, 'the client accepted');
  const id = proxy.connections()[0]?.id;
  assert.equal((await fetch(`${base}/api/connections/${id}`, { method: 'DELETE' })).status, 204);
  await waitFor(() => proxy.connections().length === 0, 5000, 'the dialing client closed');
  assert.deepEqual(
    (await targets(base)).map((x) => [x.state, x.connections]),
    [['up', 0]],
  );
});
