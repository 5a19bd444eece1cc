/**
 * Toxiproxy's HTTP API on the admin server (src/admin/toxiproxy-api.ts), driven over
 * real HTTP by the npm `toxiproxy-node-client` and by the requests of Toxiproxy's
 * README curl example (run with curl itself), with real bytes relayed to an echo upstream
 * on 127.0.0.1. Bodies and statuses are compared with what Toxiproxy answers.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { Toxiproxy } from 'toxiproxy-node-client';
import {
  type AdminOptions,
  AdminServer,
  createProxy,
  type ListenerOptions,
  type TcpProxy,
} from '../src/index.js';
import { withTimeout } from './helpers/cli.js';
import { connectClient, echo, startUpstream, type Upstream, waitFor } from './helpers/net.js';

interface Server {
  proxy: TcpProxy;
  base: string;
  client: Toxiproxy;
  upstream: Upstream;
}

/** startServer: a proxy with `listeners` (none by default), its admin server, an echo upstream. */
async function startServer(
  t: TestContext,
  listeners: ListenerOptions[] = [],
  admin: Partial<AdminOptions> = {},
): Promise<Server> {
  const upstream = await startUpstream(t, echo);
  const proxy = createProxy({ listeners });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const server = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 }, ...admin });
  await server.listen();
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address()?.port}`;
  return { proxy, base, client: new Toxiproxy(base), upstream };
}

/** roundTrip sends `text` through 127.0.0.1:port and resolves with what came back (echo). */
async function roundTrip(port: number, text: string): Promise<string> {
  const client = connectClient(port);
  client.socket.end(text);
  await withTimeout(client.closed, 5000, `the echo through ${port}`);
  assert.equal(client.errorCode, null, `connect to ${port}`);
  return client.received().toString();
}

/** refused: a connection to 127.0.0.1:port is refused. */
async function refused(port: number): Promise<boolean> {
  const client = connectClient(port);
  await withTimeout(client.closed, 5000, `a connection to ${port}`);
  return client.errorCode === 'ECONNREFUSED';
}

function portOf(listen: string): number {
  return Number(/:(\d+)$/.exec(listen)?.[1]);
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; json: unknown; text: string }> {
  const res = await fetch(`${base}${path}`, body === undefined ? { method } : { method, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/**
 * curlI runs `curl -i ARGS URL` as Toxiproxy's README does (`-sS` added, bounded in
 * time) and splits its output into the status code and the body.
 */
function curlI(args: readonly string[], url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-i', '--max-time', '10', ...args, url], (err, stdout, stderr) => {
      if (err !== null)
        return reject(new Error(`curl ${args.join(' ')} ${url}: ${stderr || err.message}`));
      const end = stdout.indexOf('\r\n\r\n');
      const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(stdout)?.[1] ?? 'NaN');
      resolve({ status, text: end === -1 ? '' : stdout.slice(end + 4) });
    });
  });
}

test('the node client creates a proxy that relays real bytes, lists it, gets it and deletes it', async (t) => {
  const { client, upstream } = await startServer(t);
  const created = await client.createProxy({
    name: 'echo',
    listen: '127.0.0.1:0',
    upstream: upstream.address,
  });
  assert.equal(created.name, 'echo');
  assert.equal(created.upstream, upstream.address);
  assert.equal(created.enabled, true);
  // Port 0 becomes the port it got, as Toxiproxy's listen does.
  assert.match(created.listen, /^127\.0\.0\.1:[1-9]\d*$/);
  const port = portOf(created.listen);
  assert.equal(await roundTrip(port, 'hello through toxiproxy'), 'hello through toxiproxy');

  const all = await client.getAll();
  assert.deepEqual(Object.keys(all), ['echo']);
  assert.equal(all['echo']?.listen, created.listen);
  const one = await client.get('echo');
  assert.deepEqual(one.toJson(), created.toJson());

  await created.remove();
  assert.ok(await refused(port), 'a deleted proxy refuses clients');
  await assert.rejects(client.get('echo'), /status code 404/);
  assert.deepEqual(await client.getAll(), {});
});

test('a disabled proxy refuses clients and closes its connections; enabled again it listens on the same address', async (t) => {
  const { client, upstream } = await startServer(t);
  const proxy = await client.createProxy({
    name: 'db',
    listen: '127.0.0.1:0',
    upstream: upstream.address,
  });
  const port = portOf(proxy.listen);
  const open = connectClient(port);
  open.socket.write('x');
  await waitFor(() => open.received().length === 1, 5000, 'the echo of x');

  const disabled = await proxy.update({
    enabled: false,
    listen: proxy.listen,
    upstream: proxy.upstream,
  });
  assert.equal(disabled.enabled, false);
  assert.equal(disabled.listen, proxy.listen);
  await withTimeout(open.ended, 5000, 'the FIN of the disabled proxy'); // closed by the proxy (a FIN: Toxiproxy closes, it does not reset)
  assert.ok(await refused(port), 'a disabled proxy refuses clients');
  assert.equal((await client.get('db')).enabled, false);

  const enabled = await disabled.update({
    enabled: true,
    listen: disabled.listen,
    upstream: disabled.upstream,
  });
  assert.equal(enabled.enabled, true);
  assert.equal(enabled.listen, proxy.listen);
  assert.equal(await roundTrip(port, 'back'), 'back');
});

test('toxics are added, read, updated and removed as Toxiproxy returns them', async (t) => {
  const { client, base, upstream } = await startServer(t);
  const proxy = await client.createProxy({
    name: 'redis',
    listen: '127.0.0.1:0',
    upstream: upstream.address,
  });
  const latency = await proxy.addToxic({
    name: 'slow',
    type: 'latency',
    stream: 'upstream',
    toxicity: 1,
    attributes: { latency: 1000, jitter: 0 },
  });
  assert.deepEqual(latency.toJson(), {
    attributes: { latency: 1000, jitter: 0 },
    name: 'slow',
    stream: 'upstream',
    toxicity: 1,
    type: 'latency',
  });
  // Defaults: stream downstream, toxicity 1, name <type>_<stream>, attributes 0.
  const made = await call(base, 'POST', '/proxies/redis/toxics', '{"type":"bandwidth"}');
  assert.equal(made.status, 200);
  assert.equal(
    made.text,
    '{"attributes":{"rate":0},"name":"bandwidth_downstream","type":"bandwidth","stream":"downstream","toxicity":1}',
  );
  const got = await proxy.getToxic('slow');
  assert.deepEqual(got.toJson(), latency.toJson());

  // An update changes only what it names; name, type and stream stay.
  const updated = await got.update({
    attributes: { jitter: 50 },
    toxicity: 0.5,
  } as unknown as Parameters<typeof got.update>[0]);
  assert.deepEqual(updated.attributes, { latency: 1000, jitter: 50 });
  assert.equal(updated.toxicity, 0.5);
  assert.equal(updated.stream, 'upstream');

  // Upstream toxics are listed first, then downstream ones, each in the order added.
  const listed = await call(base, 'GET', '/proxies/redis/toxics');
  assert.deepEqual(
    (listed.json as { name: string }[]).map((x) => x.name),
    ['slow', 'bandwidth_downstream'],
  );
  assert.deepEqual(
    ((await call(base, 'GET', '/proxies/redis')).json as { toxics: unknown[] }).toxics,
    listed.json,
  );

  await updated.remove();
  await assert.rejects(proxy.getToxic('slow'), /status code 404/);
  assert.equal(
    (await call(base, 'GET', '/proxies/redis/toxics')).text,
    made.text.replace(/^/, '[').concat(']'),
  );
});

test('populate creates, keeps and replaces proxies; reset enables every proxy and removes every toxic', async (t) => {
  const { client, base, upstream } = await startServer(t);
  const first = await client.populate([
    { name: 'a', listen: '127.0.0.1:0', upstream: upstream.address },
    { name: 'b', listen: '127.0.0.1:0', upstream: upstream.address, enabled: false },
  ]);
  assert.deepEqual(Object.keys(first).sort(), ['a', 'b']);
  assert.equal(first['b']?.enabled, false);
  const a = first['a'];
  assert.ok(a !== undefined);
  await a.addToxic({ type: 'timeout', attributes: { timeout: 0 } } as never);

  // The same listen and upstream: kept, toxics and all. Another upstream: replaced.
  const again = await call(
    base,
    'POST',
    '/populate',
    JSON.stringify([
      { name: 'a', listen: a.listen, upstream: upstream.address },
      { name: 'b', listen: '127.0.0.1:0', upstream: '127.0.0.1:1' },
    ]),
  );
  assert.equal(again.status, 201);
  const [keptA, replacedB] = (again.json as { proxies: Record<string, unknown>[] }).proxies;
  assert.equal(keptA?.['listen'], a.listen);
  assert.equal((keptA?.['toxics'] as unknown[] | undefined)?.length, 1);
  assert.equal(replacedB?.['upstream'], '127.0.0.1:1');
  assert.equal(replacedB?.['enabled'], true);

  await (await client.get('b')).update({
    enabled: false,
    listen: '127.0.0.1:0',
    upstream: '127.0.0.1:1',
  });
  await client.reset();
  const after = await client.getAll();
  assert.equal(after['a']?.enabled, true);
  assert.equal(after['b']?.enabled, true);
  const toxics = await call(base, 'GET', '/proxies/a/toxics');
  assert.deepEqual(toxics.json, []);
  assert.equal(await roundTrip(portOf(a.listen), 'after reset'), 'after reset');
});

test('listeners from the options are listed as proxies, and toxics show in /api/listeners', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { client, base, proxy } = await startServer(t, [
    { name: 'web', listen: '127.0.0.1:0', targets: [upstream.address] },
  ]);
  const port = proxy.addresses()['web']?.port;
  const web = await client.get('web');
  assert.equal(web.listen, `127.0.0.1:${port}`);
  assert.equal(web.upstream, upstream.address);
  assert.equal(web.enabled, true);
  await web.addToxic({ type: 'latency', attributes: { latency: 5, jitter: 1 } } as never);
  const listeners = (await call(base, 'GET', '/api/listeners')).json as Record<string, unknown>[];
  assert.deepEqual(listeners[0]?.['toxics'], [
    {
      attributes: { latency: 5, jitter: 1 },
      name: 'latency_downstream',
      type: 'latency',
      stream: 'downstream',
      toxicity: 1,
    },
  ]);
});

test("the README's curl examples, run with curl, answer as Toxiproxy does", async (t) => {
  const { base, upstream } = await startServer(t);
  // curl -i -d '{"name": "redis", "upstream": "localhost:6379", "listen": "localhost:26379"}' localhost:8474/proxies
  // (fixed ports replaced: any free port, the echo upstream)
  const body = `{"name": "redis", "upstream": "${upstream.address}", "listen": "localhost:0"}`;
  const created = await curlI(['-d', body], `${base}/proxies`);
  assert.equal(created.status, 201);
  const listen = (JSON.parse(created.text) as { listen: string }).listen;
  assert.match(listen, /^(127\.0\.0\.1|\[::1\]):\d+$/);
  assert.equal(
    created.text,
    `{"name":"redis","listen":"${listen}","upstream":"${upstream.address}","enabled":true,"toxics":[]}`,
  );
  // curl -i localhost:8474/proxies
  const listed = await curlI([], `${base}/proxies`);
  assert.equal(listed.status, 200);
  assert.equal(listed.text, `{"redis":${created.text}}`);
  // curl -i -d '{"type":"latency", "attributes":{"latency":1000}}' localhost:8474/proxies/redis/toxics
  const latency = '{"type":"latency", "attributes":{"latency":1000}}';
  const toxic = await curlI(['-d', latency], `${base}/proxies/redis/toxics`);
  assert.equal(toxic.status, 200);
  assert.equal(
    toxic.text,
    '{"attributes":{"latency":1000,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}',
  );
  // curl -i -X DELETE localhost:8474/proxies/redis/toxics/latency_downstream
  const removed = await curlI(['-X', 'DELETE'], `${base}/proxies/redis/toxics/latency_downstream`);
  assert.deepEqual([removed.status, removed.text], [204, '']);
  // curl -i -X DELETE localhost:8474/proxies/redis
  const deleted = await curlI(['-X', 'DELETE'], `${base}/proxies/redis`);
  assert.deepEqual([deleted.status, deleted.text], [204, '']);
  // curl -i localhost:8474/version
  const version = await curlI([], `${base}/version`);
  assert.match(version.text, /^\{"version": "[^"]+"\}\n$/);
});

test('a reload keeps proxies created over the API, unless the new options name them', async (t) => {
  const upstream = await startUpstream(t, echo);
  const web = { name: 'web', listen: '127.0.0.1:0', targets: [upstream.address] };
  const { client, proxy } = await startServer(t, [web]);
  const made = await client.createProxy({
    name: 'api',
    listen: '127.0.0.1:0',
    upstream: upstream.address,
  });
  await made.addToxic({ type: 'noop' } as never);
  const result = await proxy.reload({ listeners: [web] });
  assert.deepEqual(result, { added: [], removed: [], changed: [] });
  const kept = await client.get('api');
  assert.equal(kept.listen, made.listen);
  assert.equal(await roundTrip(portOf(made.listen), 'kept'), 'kept');
  assert.equal((await kept.getToxic('noop_downstream')).type, 'noop');

  // Named by the new options, it is theirs from then on (and goes when they drop it).
  await proxy.reload({
    listeners: [web, { name: 'api', listen: made.listen, targets: [upstream.address] }],
  });
  const dropped = await proxy.reload({ listeners: [web] });
  assert.deepEqual(dropped.removed, ['api']);
  await assert.rejects(client.get('api'), /status code 404/);
});
