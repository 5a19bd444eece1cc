/**
 * Every error of Toxiproxy's API (src/admin/toxiproxy-api.ts) with Toxiproxy's status
 * and body (`{"error": ..., "status": N}`, texts from its api.go), the admin server's
 * safety rules on these routes (Host, Origin, Sec-Fetch-Site, token, body limit), and
 * the API answering at once while a peer does not read.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get } from 'node:http';
import { createServer } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { type AdminOptions, AdminServer, createProxy, type TcpProxy } from '../src/index.js';
import type { ToxiproxyProxy } from '../src/toxiproxy-host.js';
import { connectClient, echo, startUpstream, type Upstream } from './helpers/net.js';
import { deadline } from './helpers/time.js';

async function startServer(
  t: TestContext,
  admin: Partial<AdminOptions> = {},
): Promise<{ proxy: TcpProxy; base: string; upstream: Upstream }> {
  const upstream = await startUpstream(t, echo);
  const proxy = createProxy({ listeners: [] });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const server = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 }, ...admin });
  await server.listen();
  t.after(() => server.close());
  return { proxy, base: `http://127.0.0.1:${server.address()?.port}`, upstream };
}

async function call(
  base: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> | undefined }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text) };
}

/** apiError is Toxiproxy's error body. */
function apiError(
  status: number,
  error: string,
): { status: number; json: Record<string, unknown> } {
  return { status, json: { error, status } };
}

/** busyPort is a port on 127.0.0.1 that something else listens on until the test ends. */
async function busyPort(t: TestContext): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

test("every error of the proxy routes has Toxiproxy's status and body", async (t) => {
  const { base, upstream } = await startServer(t);
  const up = upstream.address;
  const busy = await busyPort(t);
  const created = await call(
    base,
    'POST',
    '/proxies',
    JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: up }),
  );
  assert.equal(created.status, 201);
  const cases: [string, string, string | undefined, { status: number; json: unknown }][] = [
    ['POST', '/proxies', '', apiError(400, 'bad request body: EOF')],
    [
      'POST',
      '/proxies',
      JSON.stringify({ upstream: up }),
      apiError(400, 'missing required field: name'),
    ],
    [
      'POST',
      '/proxies',
      JSON.stringify({ name: 'q' }),
      apiError(400, 'missing required field: upstream'),
    ],
    [
      'POST',
      '/proxies',
      JSON.stringify({ name: 'p', upstream: up }),
      apiError(409, 'proxy already exists'),
    ],
    ['GET', '/proxies/nope', undefined, apiError(404, 'proxy not found')],
    ['POST', '/proxies/nope', '{}', apiError(404, 'proxy not found')],
    ['PATCH', '/proxies/nope', '{}', apiError(404, 'proxy not found')],
    ['DELETE', '/proxies/nope', undefined, apiError(404, 'proxy not found')],
    ['GET', '/proxies/nope/toxics', undefined, apiError(404, 'proxy not found')],
    ['POST', '/proxies/nope/toxics', '{"type":"noop"}', apiError(404, 'proxy not found')],
    ['GET', '/proxies/nope/toxics/t', undefined, apiError(404, 'proxy not found')],
    ['PATCH', '/proxies/p', '', apiError(400, 'bad request body: EOF')],
    [
      'POST',
      '/populate',
      JSON.stringify([{ upstream: up }]),
      {
        status: 400,
        json: { error: 'missing required field: name at proxy 1', status: 400, proxies: null },
      },
    ],
    [
      'POST',
      '/populate',
      JSON.stringify([{ name: 'a', upstream: up }, { name: 'b' }]),
      {
        status: 400,
        json: { error: 'missing required field: upstream at proxy 2', status: 400, proxies: null },
      },
    ],
    [
      'POST',
      '/populate',
      '',
      { status: 400, json: { error: 'bad request body: EOF', status: 400, proxies: null } },
    ],
    ['PUT', '/proxies', '{}', apiError(405, 'method not allowed')],
    ['DELETE', '/reset', undefined, apiError(405, 'method not allowed')],
  ];
  for (const [method, path, body, expected] of cases) {
    assert.deepEqual(
      await call(base, method, path, body),
      expected,
      `${method} ${path} ${body ?? ''}`,
    );
  }
  // Malformed bodies: Toxiproxy's prefix, then why (the parser's words differ from Go's).
  for (const [path, body] of [
    ['/proxies', '{'],
    ['/proxies', '[]'],
    ['/proxies', '{"name": 5, "upstream": "a:1"}'],
    ['/proxies', '{"name": "x", "upstream": "a:1", "enabled": "yes"}'],
    ['/proxies', '{"name": "x", "upstream": "no port"}'],
    ['/proxies/p', '{"listen": "no port"}'],
  ] as const) {
    const answer = await call(base, 'POST', path, body);
    assert.equal(answer.status, 400, `${path} ${body}`);
    assert.match(String(answer.json?.['error']), /^bad request body: ./, body);
    assert.equal(answer.json?.['status'], 400);
  }
  // A listen address in use: Toxiproxy's 500, with the reason; nothing is created.
  const inUse = await call(
    base,
    'POST',
    '/proxies',
    JSON.stringify({ name: 'x', listen: `127.0.0.1:${busy}`, upstream: up }),
  );
  assert.equal(inUse.status, 500);
  assert.match(String(inUse.json?.['error']), new RegExp(`127\\.0\\.0\\.1:${busy}.*in use`));
  assert.equal((await call(base, 'GET', '/proxies/x')).status, 404);
  // populate stops at the first proxy that cannot start and lists those made before it.
  const partial = await call(
    base,
    'POST',
    '/populate',
    JSON.stringify([
      { name: 'ok', listen: '127.0.0.1:0', upstream: up },
      { name: 'bad', listen: `127.0.0.1:${busy}`, upstream: up },
    ]),
  );
  assert.equal(partial.status, 500);
  assert.deepEqual(
    (partial.json?.['proxies'] as { name: string }[] | undefined)?.map((p) => p.name),
    ['ok'],
  );
});

test("every error of the toxic routes has Toxiproxy's status and body, checked in its order", async (t) => {
  const { base, upstream } = await startServer(t);
  await call(
    base,
    'POST',
    '/proxies',
    JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: upstream.address }),
  );
  assert.equal(
    (await call(base, 'POST', '/proxies/p/toxics', '{"type":"latency","name":"l"}')).status,
    200,
  );
  const cases: [string, string, string | undefined, { status: number; json: unknown }][] = [
    ['POST', '/proxies/p/toxics', '', apiError(400, 'bad request body: EOF')],
    [
      'POST',
      '/proxies/p/toxics',
      '{"type":"latency","stream":"sideways"}',
      apiError(400, 'stream was invalid, can be either upstream or downstream'),
    ],
    ['POST', '/proxies/p/toxics', '{"type":"nope"}', apiError(400, 'invalid toxic type')],
    ['POST', '/proxies/p/toxics', '{}', apiError(400, 'invalid toxic type')],
    [
      'POST',
      '/proxies/p/toxics',
      '{"type":"latency","name":"l"}',
      apiError(409, 'toxic already exists'),
    ],
    // The name is checked before the attributes, as in Toxiproxy.
    [
      'POST',
      '/proxies/p/toxics',
      '{"type":"latency","name":"l","attributes":{"latency":"x"}}',
      apiError(409, 'toxic already exists'),
    ],
    ['GET', '/proxies/p/toxics/nope', undefined, apiError(404, 'toxic not found')],
    ['POST', '/proxies/p/toxics/nope', '{}', apiError(404, 'toxic not found')],
    ['PATCH', '/proxies/p/toxics/nope', '{}', apiError(404, 'toxic not found')],
    ['DELETE', '/proxies/p/toxics/nope', undefined, apiError(404, 'toxic not found')],
    ['PATCH', '/proxies/p/toxics/l', '', apiError(400, 'bad request body: EOF')],
    ['PUT', '/proxies/p/toxics/l', '{}', apiError(405, 'method not allowed')],
  ];
  for (const [method, path, body, expected] of cases) {
    assert.deepEqual(
      await call(base, method, path, body),
      expected,
      `${method} ${path} ${body ?? ''}`,
    );
  }
  for (const body of [
    '{"type":"latency","attributes":{"latency":"x"}}',
    '{"type":"latency","attributes":{"latency":-1}}',
    '{"type":"latency","attributes":{"latency":1.5}}',
    '{"type":"latency","attributes":5}',
    '{"type":"latency","toxicity":2}',
    '{"type":5}',
  ]) {
    const answer = await call(base, 'POST', '/proxies/p/toxics', body);
    assert.equal(answer.status, 400, body);
    assert.match(String(answer.json?.['error']), /^bad request body: ./, body);
  }
  const bad = await call(base, 'PATCH', '/proxies/p/toxics/l', '{"toxicity":-0.5}');
  assert.equal(bad.status, 400);
  // Nothing refused was stored.
  const toxics = await call(base, 'GET', '/proxies/p/toxics');
  assert.deepEqual(toxics.json, [
    {
      attributes: { latency: 0, jitter: 0 },
      name: 'l',
      type: 'latency',
      stream: 'downstream',
      toxicity: 1,
    },
  ]);
});

test("the admin safety rules hold on Toxiproxy's routes", async (t) => {
  const { base, upstream } = await startServer(t);
  const body = JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: upstream.address });
  const crossOrigin = await call(base, 'POST', '/proxies', body, { Origin: 'http://evil.example' });
  assert.equal(crossOrigin.status, 403);
  const crossSite = await call(base, 'POST', '/proxies', body, { 'Sec-Fetch-Site': 'cross-site' });
  assert.equal(crossSite.status, 403);
  const port = Number(new URL(base).port);
  // fetch will not send another Host: node:http will (DNS rebinding).
  const [rebound] = await once(
    get({ port, host: '127.0.0.1', path: '/proxies', headers: { Host: `evil.example:${port}` } }),
    'response',
  );
  rebound.resume();
  assert.equal(rebound.statusCode, 403);
  const huge = await call(
    base,
    'POST',
    '/proxies',
    `{"name":"p","pad":"${'x'.repeat(1024 * 1024)}"}`,
  );
  assert.equal(huge.status, 413);
  // A chunked body is counted as it comes.
  const chunk = new TextEncoder().encode(' '.repeat(64 * 1024));
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent > 2 * 1024 * 1024) controller.close();
      else controller.enqueue(chunk);
      sent += chunk.length;
    },
  });
  const chunked = await fetch(`${base}/proxies`, {
    method: 'POST',
    body: stream,
    duplex: 'half',
  } as RequestInit);
  assert.equal(chunked.status, 413);
  assert.deepEqual(await chunked.json(), {
    error: 'request body too large: more than 1048576 bytes',
    status: 413,
  });
  // None of them created anything.
  assert.deepEqual((await call(base, 'GET', '/proxies')).json, {});
});

test("with a token, Toxiproxy's routes need it", async (t) => {
  const { base, upstream } = await startServer(t, { token: 's3cret' });
  const body = JSON.stringify({ name: 'p', listen: '127.0.0.1:0', upstream: upstream.address });
  assert.equal((await call(base, 'POST', '/proxies', body)).status, 401);
  assert.equal((await call(base, 'GET', '/version')).status, 401);
  const created = await call(base, 'POST', '/proxies', body, { Authorization: 'Bearer s3cret' });
  assert.equal(created.status, 201);
});

test('the API answers at once while a peer does not read', async (t) => {
  const { base } = await startServer(t);
  // An upstream that writes without end to a client that never reads.
  const flood = await startUpstream(t, (socket) => {
    const block = Buffer.alloc(64 * 1024, 1);
    const write = (): void => {
      while (socket.writable && socket.write(block));
      if (socket.writable) socket.once('drain', write);
    };
    write();
  });
  const created = await call(
    base,
    'POST',
    '/proxies',
    JSON.stringify({ name: 'f', listen: '127.0.0.1:0', upstream: flood.address }),
  );
  const port = Number(/:(\d+)$/.exec(String(created.json?.['listen']))?.[1]);
  const client = connectClient(port);
  client.socket.pause();
  t.after(() => client.socket.destroy());
  await flood.accepted();
  const limitMs = deadline(1000);
  for (const [method, path, body] of [
    ['POST', '/proxies/f/toxics', '{"type":"timeout","attributes":{"timeout":0}}'],
    ['GET', '/proxies', undefined],
    ['DELETE', '/proxies/f/toxics/timeout_downstream', undefined],
    ['POST', '/proxies/f', '{"enabled":false}'],
    ['POST', '/reset', undefined],
    ['DELETE', '/proxies/f', undefined],
  ] as const) {
    const started = performance.now();
    const answer = await call(base, method, path, body);
    const tookMs = performance.now() - started;
    assert.ok(answer.status < 300, `${method} ${path}: ${answer.status}`);
    assert.ok(tookMs < limitMs, `${method} ${path} took ${Math.round(tookMs)} ms`);
  }
});

test('proxies created together are created one at a time: one name, one proxy', async (t) => {
  const { proxy, upstream } = await startServer(t);
  // Straight to the supervisor, in one tick: each create sees the ones before it.
  const host = proxy as unknown as ToxiproxyProxy;
  const options = { name: 'p', listen: '127.0.0.1:0', targets: [upstream.address] };
  const created = await Promise.all([1, 2, 3].map(() => host.createListener(options)));
  assert.deepEqual(
    created.map((c) => (c === 'exists' ? c : c.state)),
    ['serving', 'exists', 'exists'],
  );
  assert.equal(host.listenerInfo().length, 1);
});
