/**
 * The admin HTTP server (src/admin/server.ts) through the library: a proxy from
 * createProxy(), an AdminServer on 127.0.0.1:0, real client and upstream sockets,
 * and Node's fetch. Every route and its errors, the token, reload, closing
 * connections, draining targets, and the Prometheus exposition after known traffic.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { describe, test } from 'node:test';
import { Script } from 'node:vm';
import {
  type AdminOptions,
  AdminServer,
  type ConnectionInfo,
  createProxy,
  type ProxyOptions,
  type TcpProxy,
  VERSION,
} from '../src/index.js';
import {
  connectClient,
  echo,
  type RecordingClient,
  refusedTarget,
  startUpstream,
  type Upstream,
  waitFor,
} from './helpers/net.js';

// ---------------------------------------------------------------- helpers

const LOOPBACK = { host: '127.0.0.1', port: 0 } as const;

/** startAdmin serves `proxy`'s admin API on 127.0.0.1:0 until the test ends. */
async function startAdmin(
  t: TestContext,
  proxy: TcpProxy,
  options: Partial<AdminOptions> = {},
): Promise<string> {
  const admin = new AdminServer(proxy, { listen: LOOPBACK, ...options });
  await admin.listen();
  t.after(() => admin.close());
  const address = admin.address();
  assert.ok(address !== null);
  return `http://127.0.0.1:${address.port}`;
}

/** startProxy starts a proxy from `options` and closes it (at once) after the test. */
async function startProxy(t: TestContext, options: ProxyOptions): Promise<TcpProxy> {
  const proxy = createProxy(options);
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  return proxy;
}

/** portOf is the bound port of the listener named `name`. */
function portOf(proxy: TcpProxy, name: string): number {
  const address = proxy.addresses()[name];
  assert.ok(address, `listener ${name} is bound`);
  return address.port;
}

/** Setup is one proxy with one listener `web` in front of echo upstreams, plus its admin URL. */
interface Setup {
  proxy: TcpProxy;
  base: string;
  port: number;
  upstreams: Upstream[];
}

async function setup(
  t: TestContext,
  { upstreams = 1, name = 'web', admin = {} as Partial<AdminOptions> } = {},
): Promise<Setup> {
  const servers: Upstream[] = [];
  for (let i = 0; i < upstreams; i++) servers.push(await startUpstream(t, echo));
  const proxy = await startProxy(t, {
    listeners: [{ name, listen: '127.0.0.1:0', targets: servers.map((s) => s.address) }],
  });
  const base = await startAdmin(t, proxy, admin);
  return { proxy, base, port: portOf(proxy, name), upstreams: servers };
}

/** echoed opens a client, sends `bytes` and waits until the echo has come back. */
async function echoed(
  t: TestContext,
  port: number,
  bytes: Buffer | string,
): Promise<RecordingClient> {
  const client = connectClient(port);
  t.after(() => client.socket.destroy());
  const data = Buffer.from(bytes);
  client.socket.write(data);
  await waitFor(() => client.received().length === data.length, 5000, 'the echo');
  return client;
}

/** closes collects the proxy's connectionClose events. */
function closes(proxy: TcpProxy): ConnectionInfo[] {
  const seen: ConnectionInfo[] = [];
  proxy.on('connectionClose', (c) => seen.push(c));
  return seen;
}

async function json(response: Response): Promise<unknown> {
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  return response.json();
}

async function errorOf(response: Response): Promise<string> {
  const body = (await json(response)) as { error?: unknown };
  assert.equal(typeof body.error, 'string', 'an error body is { error: string }');
  return body.error as string;
}

interface TargetJson {
  address: string;
  weight: number;
  state: string;
  connects: number;
  failures: Record<string, number>;
}

function post(url: string): Promise<Response> {
  return fetch(url, { method: 'POST' });
}

function drainUrl(base: string, listener: string, target: string, action: string): string {
  return `${base}/api/listeners/${encodeURIComponent(listener)}/targets/${encodeURIComponent(target)}/${action}`;
}

/** Sample is one line of the text exposition format: a name, its labels and its value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * parseExposition reads Prometheus's text format (0.0.4): `# HELP` and `# TYPE`
 * comments, then one sample a line, `name{label="value",...} number`, where label
 * values escape `\\`, `\"` and `\n`. Throws on a line it cannot read.
 */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type?.[1] !== undefined && type[2] !== undefined) types.set(type[1], type[2]);
      continue;
    }
    const head = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (head?.[1] === undefined) throw new Error(`not a sample: ${line}`);
    const name = head[1];
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      while (!rest.startsWith('}')) {
        const label = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/.exec(rest);
        if (label?.[1] === undefined || label[2] === undefined)
          throw new Error(`bad labels: ${line}`);
        labels[label[1]] = label[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        rest = rest.slice(label[0].length);
      }
      rest = rest.slice(1);
    }
    const value = /^ (\S+)(?: \d+)?$/.exec(rest)?.[1];
    if (value === undefined) throw new Error(`no value: ${line}`);
    samples.push({ name, labels, value: value === '+Inf' ? Infinity : Number(value) });
  }
  return { samples, types };
}

/** total sums the samples named `name` whose labels include every one of `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name)
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

// ---------------------------------------------------------------- the JSON API

describe('admin API', () => {
  test('GET /api/status reports the version, uptime and open connections', async (t) => {
    const { base, port } = await setup(t);
    await echoed(t, port, 'hi');
    const response = await fetch(`${base}/api/status`);
    assert.equal(response.status, 200);
    const body = (await json(response)) as Record<string, unknown>;
    assert.equal(body['version'], VERSION);
    assert.equal(typeof body['uptime_ms'], 'number');
    assert.ok((body['uptime_ms'] as number) >= 0);
    assert.equal(body['connections_active'], 1);
  });

  test('GET /api/listeners describes options, targets and counters', async (t) => {
    const upstream = await startUpstream(t, echo);
    const proxy = await startProxy(t, {
      listeners: [
        {
          name: 'web',
          listen: '127.0.0.1:0',
          targets: [{ address: upstream.address, weight: 3 }],
          idleTimeoutMs: 60_000,
          maxConnections: 10,
        },
      ],
    });
    const base = await startAdmin(t, proxy);
    const client = await echoed(t, portOf(proxy, 'web'), 'hello');
    const response = await fetch(`${base}/api/listeners`);
    assert.equal(response.status, 200);
    const [web, ...more] = (await json(response)) as Record<string, unknown>[];
    assert.equal(more.length, 0);
    assert.ok(web);
    assert.equal(web['name'], 'web');
    assert.equal(web['listen'], '127.0.0.1:0');
    assert.equal(web['address'], `127.0.0.1:${portOf(proxy, 'web')}`);
    assert.equal(web['idle_timeout_ms'], 60_000);
    assert.equal(web['half_close_timeout_ms'], 0);
    assert.equal(web['connect_timeout_ms'], 10_000);
    assert.equal(web['shutdown_timeout_ms'], 30_000);
    assert.equal(web['max_connections'], 10);
    assert.deepEqual(web['targets'], [
      {
        address: upstream.address,
        weight: 3,
        backup: false,
        state: 'up',
        connections: 1,
        connects: 1,
        failures: {},
      },
    ]);
    assert.equal(web['connections_accepted'], 1);
    assert.equal(web['connections_active'], 1);
    assert.deepEqual(web['connections_closed'], {});
    assert.equal(web['bytes_to_upstream'], 5);
    assert.equal(web['bytes_to_client'], 5);
    assert.deepEqual(web['connect_failures'], {});
    client.socket.destroy();
  });

  test('GET /api/listeners says max_connections is null when there is no limit', async (t) => {
    const { base } = await setup(t);
    const [web] = (await json(await fetch(`${base}/api/listeners`))) as Record<string, unknown>[];
    assert.equal(web?.['max_connections'], null);
  });

  test('GET /api/connections lists each open connection with string ids', async (t) => {
    const { base, port, upstreams } = await setup(t);
    const client = await echoed(t, port, 'four');
    const response = await fetch(`${base}/api/connections`);
    assert.equal(response.status, 200);
    const list = (await json(response)) as Record<string, unknown>[];
    assert.equal(list.length, 1);
    const [c] = list;
    assert.ok(c);
    assert.equal(typeof c['id'], 'string');
    assert.equal(c['listener'], 'web');
    assert.equal(c['state'], 'relaying');
    assert.equal(c['client'], `127.0.0.1:${client.socket.localPort}`);
    assert.equal(c['upstream'], upstreams[0]?.address);
    assert.equal(c['bytes_to_upstream'], 4);
    assert.equal(c['bytes_to_client'], 4);
    assert.equal(typeof c['connect_ms'], 'number');
    assert.equal(typeof c['age_ms'], 'number');
  });

  test('answers 404 with a JSON error for an unknown path', async (t) => {
    const { base } = await setup(t);
    for (const path of ['/nope', '/api', '/api/status/extra', '/api/listeners/web']) {
      const response = await fetch(`${base}${path}`);
      assert.equal(response.status, 404, path);
      assert.match(await errorOf(response), /no such path/);
    }
  });

  test('answers 405 with an Allow header for a method a path does not take', async (t) => {
    const { base } = await setup(t);
    const cases: [string, string, string][] = [
      ['POST', '/api/status', 'GET'],
      ['DELETE', '/api/listeners', 'GET'],
      ['PUT', '/api/connections', 'GET'],
      ['GET', '/api/connections/1', 'DELETE'],
      ['GET', '/api/reload', 'POST'],
      ['GET', '/api/listeners/web/targets/x/drain', 'POST'],
      ['POST', '/metrics', 'GET'],
      ['DELETE', '/', 'GET'],
    ];
    for (const [method, path, allow] of cases) {
      const response = await fetch(`${base}${path}`, { method });
      assert.equal(response.status, 405, `${method} ${path}`);
      assert.equal(response.headers.get('allow'), allow, `${method} ${path}`);
      assert.match(await errorOf(response), /not allowed/);
    }
  });

  test('answers HEAD like GET, without a body', async (t) => {
    const { base } = await setup(t);
    const response = await fetch(`${base}/api/status`, { method: 'HEAD' });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '');
  });

  test('serves the status page at / as one self-contained HTML document', async (t) => {
    const { base } = await setup(t);
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    const html = await response.text();
    assert.match(html, /^<!doctype html>/i);
    // No external assets: every src or href is inline data, and nothing is loaded by URL.
    for (const [, attr, value] of html.matchAll(/\b(src|href)\s*=\s*"([^"]*)"/g)) {
      assert.match(value ?? '', /^data:/, `${attr}="${value}" must not load anything`);
    }
    assert.doesNotMatch(html, /https?:\/\//);
    assert.doesNotMatch(html, /\binnerHTML\b/);
    // The inline script at least parses (its behaviour is tested in a browser: test/e2e).
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1] ?? '');
    assert.equal(scripts.length, 1);
    assert.doesNotThrow(() => new Script(`(async () => {${scripts[0]}})`));
  });
});

// ---------------------------------------------------------------- closing connections

describe('DELETE /api/connections/{id}', () => {
  test('closes a live connection with a FIN to both sides (cause admin_kill)', async (t) => {
    const { proxy, base, port, upstreams } = await setup(t);
    const closed = closes(proxy);
    const client = await echoed(t, port, 'x');
    const upstreamSocket = await upstreams[0]?.accepted(0);
    assert.ok(upstreamSocket);
    const upstreamEnded = new Promise<void>((resolve) => upstreamSocket.once('end', resolve));
    const [info] = proxy.connections();
    assert.ok(info);
    const response = await fetch(`${base}/api/connections/${info.id}`, { method: 'DELETE' });
    assert.equal(response.status, 204);
    assert.equal(await response.text(), '');
    await client.ended;
    await upstreamEnded;
    assert.equal(client.errorCode, null);
    await waitFor(() => closed.length === 1, 5000, 'the close event');
    assert.equal(closed[0]?.cause, 'admin_kill');
    assert.equal(proxy.connections().length, 0);
  });

  test('with ?reset=1 resets the client (ECONNRESET)', async (t) => {
    const { proxy, base, port } = await setup(t);
    const closed = closes(proxy);
    const client = await echoed(t, port, 'x');
    const id = proxy.connections()[0]?.id;
    const response = await fetch(`${base}/api/connections/${id}?reset=1`, { method: 'DELETE' });
    assert.equal(response.status, 204);
    assert.equal(await client.closed, 'ECONNRESET');
    assert.equal(client.sawEnd, false);
    await waitFor(() => closed.length === 1, 5000, 'the close event');
    assert.equal(closed[0]?.cause, 'admin_kill');
  });

  test('with ?reset=0 closes with a FIN', async (t) => {
    const { proxy, base, port } = await setup(t);
    const client = await echoed(t, port, 'x');
    const id = proxy.connections()[0]?.id;
    const response = await fetch(`${base}/api/connections/${id}?reset=0`, { method: 'DELETE' });
    assert.equal(response.status, 204);
    await client.ended;
    assert.equal(client.errorCode, null);
  });

  test('answers 400 for a reset that is not 0 or 1, and leaves the connection open', async (t) => {
    const { proxy, base, port } = await setup(t);
    await echoed(t, port, 'x');
    const id = proxy.connections()[0]?.id;
    for (const reset of ['x', 'true', '', '2']) {
      const response = await fetch(`${base}/api/connections/${id}?reset=${reset}`, {
        method: 'DELETE',
      });
      assert.equal(response.status, 400, `reset=${reset}`);
      assert.match(await errorOf(response), /reset must be 0 or 1/);
    }
    assert.equal(proxy.connections().length, 1);
  });

  test('answers 404 for an id with no open connection', async (t) => {
    const { proxy, base, port } = await setup(t);
    await echoed(t, port, 'x');
    for (const id of ['999999', 'abc', encodeURIComponent('1 2/3')]) {
      const response = await fetch(`${base}/api/connections/${id}`, { method: 'DELETE' });
      assert.equal(response.status, 404, id);
      assert.match(await errorOf(response), /no open connection/);
    }
    assert.equal(proxy.connections().length, 1);
  });

  test('answers 404 for a connection that already closed', async (t) => {
    const { proxy, base, port } = await setup(t);
    const client = await echoed(t, port, 'x');
    const id = proxy.connections()[0]?.id;
    client.socket.end();
    await waitFor(() => proxy.connections().length === 0, 5000, 'the connection to close');
    const response = await fetch(`${base}/api/connections/${id}`, { method: 'DELETE' });
    assert.equal(response.status, 404);
  });

  test('answers 400 for malformed percent-encoding in the id', async (t) => {
    const { base } = await setup(t);
    const response = await fetch(`${base}/api/connections/%zz`, { method: 'DELETE' });
    assert.equal(response.status, 400);
    assert.match(await errorOf(response), /malformed percent-encoding/);
  });
});

// ---------------------------------------------------------------- draining targets

describe('POST /api/listeners/{name}/targets/{address}/drain and /undrain', () => {
  /** upstreamCounts is how many connections each upstream has accepted so far. */
  const counts = (upstreams: Upstream[]): number[] => upstreams.map((u) => u.sockets.length);

  test('drain makes new connections skip the target, undrain puts it back', async (t) => {
    // A name with a space and a slash: the path parts are percent-encoded.
    const name = 'web/edge 1';
    const { base, port, upstreams } = await setup(t, { upstreams: 2, name });
    const [a, b] = upstreams;
    assert.ok(a && b);

    const drained = await post(drainUrl(base, name, b.address, 'drain'));
    assert.equal(drained.status, 200);
    assert.deepEqual(await json(drained), {
      address: b.address,
      weight: 1,
      backup: false,
      state: 'drained',
      connections: 0,
      connects: 0,
      failures: {},
    });
    for (let i = 0; i < 4; i++) await echoed(t, port, 'x');
    assert.deepEqual(counts(upstreams), [4, 0], 'every new connection went to A');

    const [listener] = (await json(await fetch(`${base}/api/listeners`))) as {
      targets: TargetJson[];
    }[];
    assert.deepEqual(
      listener?.targets.map((x) => [x.address, x.state]),
      [
        [a.address, 'up'],
        [b.address, 'drained'],
      ],
    );

    const undrained = await post(drainUrl(base, name, b.address, 'undrain'));
    assert.equal(undrained.status, 200);
    assert.equal(((await json(undrained)) as TargetJson).state, 'up');
    for (let i = 0; i < 4; i++) await echoed(t, port, 'x');
    const [toA, toB] = counts(upstreams);
    assert.equal((toA ?? 0) + (toB ?? 0), 8);
    assert.ok((toB ?? 0) >= 1, `B takes connections again (A ${toA}, B ${toB})`);
  });

  test('drain leaves open connections alone', async (t) => {
    const { proxy, base, port, upstreams } = await setup(t);
    const client = await echoed(t, port, 'before');
    const target = upstreams[0]?.address ?? '';
    assert.equal((await post(drainUrl(base, 'web', target, 'drain'))).status, 200);
    client.socket.write('after');
    await waitFor(() => client.received().toString() === 'beforeafter', 5000, 'the echo');
    assert.equal(proxy.connections().length, 1);
  });

  test('draining every target closes new clients at once with cause no_target', async (t) => {
    const { proxy, base, port, upstreams } = await setup(t, { upstreams: 2 });
    const closed = closes(proxy);
    for (const u of upstreams) {
      assert.equal((await post(drainUrl(base, 'web', u.address, 'drain'))).status, 200);
    }
    const startedMs = Date.now();
    const client = connectClient(port);
    t.after(() => client.socket.destroy());
    await client.ended;
    client.socket.end();
    assert.equal(await client.closed, null, 'a FIN, not a reset');
    // Below the 10 s connect timeout however busy the machine is (the cause below is the proof).
    assert.ok(Date.now() - startedMs < 9000, 'closed at once, not after the 10 s connect timeout');
    await waitFor(() => closed.length === 1, 5000, 'the close event');
    assert.equal(closed[0]?.cause, 'no_target');
    assert.deepEqual(counts(upstreams), [0, 0]);
    const [listener] = (await json(await fetch(`${base}/api/listeners`))) as Record<
      string,
      unknown
    >[];
    assert.deepEqual(listener?.['connections_closed'], { no_target: 1 });
  });

  test('answers 404 for an unknown listener or target', async (t) => {
    const { base, upstreams } = await setup(t);
    const target = upstreams[0]?.address ?? '';
    const noListener = await post(drainUrl(base, 'nope', target, 'drain'));
    assert.equal(noListener.status, 404);
    assert.match(await errorOf(noListener), /no listener named "nope"/);
    const noTarget = await post(drainUrl(base, 'web', '127.0.0.1:1', 'undrain'));
    assert.equal(noTarget.status, 404);
    assert.match(await errorOf(noTarget), /has no target "127.0.0.1:1"/);
  });

  test('answers 400 for malformed percent-encoding in the path', async (t) => {
    const { base } = await setup(t);
    const response = await post(`${base}/api/listeners/web/targets/%E0%A4%A/drain`);
    assert.equal(response.status, 400);
    assert.match(await errorOf(response), /malformed percent-encoding/);
  });
});

// ---------------------------------------------------------------- token

describe('admin token', () => {
  const token = 'correct horse battery staple';

  test('answers 401 without a token or with a wrong one, 200 with the right one', async (t) => {
    const { base } = await setup(t, { admin: { token } });
    for (const path of ['/api/status', '/api/listeners', '/api/connections', '/metrics']) {
      const none = await fetch(`${base}${path}`);
      assert.equal(none.status, 401, `${path} without a token`);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      assert.match(await errorOf(none), /token/);
      for (const authorization of [
        'Bearer wrong',
        `Bearer ${token}x`,
        `Basic ${token}`,
        `bearer ${token}`,
        token,
      ]) {
        const wrong = await fetch(`${base}${path}`, { headers: { authorization } });
        assert.equal(wrong.status, 401, `${path} with ${authorization}`);
        await wrong.arrayBuffer();
      }
      const right = await fetch(`${base}${path}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(right.status, 200, `${path} with the token`);
      await right.arrayBuffer();
    }
  });

  test('checks the token before anything else (no 404 or 405 leaks)', async (t) => {
    const { base } = await setup(t, { admin: { token } });
    assert.equal((await fetch(`${base}/nope`)).status, 401);
    assert.equal((await fetch(`${base}/api/status`, { method: 'POST' })).status, 401);
    assert.equal((await fetch(`${base}/api/connections/1`, { method: 'DELETE' })).status, 401);
  });

  test('serves the status page itself without a token, so a browser can open it', async (t) => {
    const { base } = await setup(t, { admin: { token } });
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
  });

  test('a listen address other than loopback without a token is refused', async (t) => {
    const proxy = await startProxy(t, {
      listeners: [{ listen: '127.0.0.1:0', targets: ['127.0.0.1:1'] }],
    });
    for (const host of ['0.0.0.0', '::', '192.0.2.1', undefined]) {
      assert.throws(
        () => new AdminServer(proxy, { listen: { host, port: 0 } }),
        (err: unknown) => {
          assert.equal((err as { code?: unknown }).code, 'PROXY_ERR_INVALID_CONFIG');
          assert.match((err as Error).message, /without a token/);
          return true;
        },
        String(host),
      );
    }
    // With a token it may (the server is only constructed here, not bound).
    assert.doesNotThrow(
      () => new AdminServer(proxy, { listen: { host: '0.0.0.0', port: 0 }, token }),
    );
  });
});

// ---------------------------------------------------------------- reload

describe('POST /api/reload', () => {
  test('answers 422 when the proxy has nothing to reload', async (t) => {
    const { base } = await setup(t);
    const response = await post(`${base}/api/reload`);
    assert.equal(response.status, 422);
    assert.match(await errorOf(response), /nothing to reload/);
  });

  test('answers 422 with the message when the new config is invalid', async (t) => {
    const upstream = await startUpstream(t, echo);
    const proxy = await startProxy(t, {
      listeners: [{ name: 'web', listen: '127.0.0.1:0', targets: [upstream.address] }],
    });
    const base = await startAdmin(t, proxy, {
      reload: () => proxy.reload({ listeners: [{ name: 'web', listen: 'nope', targets: [] }] }),
    });
    const response = await post(`${base}/api/reload`);
    assert.equal(response.status, 422);
    assert.match(await errorOf(response), /listen|targets/);
    assert.equal(proxy.listenerInfo()[0]?.name, 'web', 'nothing changed');
  });

  test('answers 200 with what a good reload changed', async (t) => {
    const upstream = await startUpstream(t, echo);
    const listener = { name: 'web', listen: '127.0.0.1:0', targets: [upstream.address] };
    const proxy = await startProxy(t, { listeners: [listener] });
    let calls = 0;
    const base = await startAdmin(t, proxy, {
      reload: () => {
        calls += 1;
        // The same listen address (so the socket stays), a new idle timeout.
        return proxy.reload({ listeners: [{ ...listener, idleTimeoutMs: 5000 }] });
      },
    });
    const response = await post(`${base}/api/reload`);
    assert.equal(response.status, 200);
    assert.deepEqual(await json(response), { added: [], removed: [], changed: ['web'] });
    assert.equal(calls, 1);
    assert.equal(proxy.listenerInfo()[0]?.idleTimeoutMs, 5000);
  });
});

// ---------------------------------------------------------------- metrics

describe('GET /metrics', () => {
  test('counts known traffic: bytes, accepted, closed by cause, failures, histograms', async (t) => {
    const upstream = await startUpstream(t, echo);
    const refused = await refusedTarget();
    const proxy = await startProxy(t, {
      listeners: [
        { name: 'web', listen: '127.0.0.1:0', targets: [upstream.address] },
        { name: 'dead', listen: '127.0.0.1:0', targets: [refused] },
      ],
    });
    const base = await startAdmin(t, proxy);
    const closed = closes(proxy);

    // web: three clients finish normally (client_fin) and one is closed by the admin API.
    const sizes = [1, 1000, 70_000];
    for (const size of sizes) {
      const client = await echoed(t, portOf(proxy, 'web'), Buffer.alloc(size, 'm'));
      client.socket.end();
      await client.closed;
    }
    await echoed(t, portOf(proxy, 'web'), 'kill me');
    const id = proxy.connections()[0]?.id;
    assert.equal((await fetch(`${base}/api/connections/${id}`, { method: 'DELETE' })).status, 204);
    // dead: one client whose only target refuses.
    const refusedClient = connectClient(portOf(proxy, 'dead'));
    t.after(() => refusedClient.socket.destroy());
    await refusedClient.ended;
    await waitFor(() => closed.length === 5, 5000, 'five closed connections');

    const response = await fetch(`${base}/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const { samples, types } = parseExposition(await response.text());

    const bytesSent = sizes.reduce((a, b) => a + b, 0) + 'kill me'.length;
    for (const direction of ['to_upstream', 'to_client']) {
      assert.equal(
        total(samples, 'proxy_bytes_total', { listener: 'web', direction }),
        bytesSent,
        direction,
      );
      assert.equal(total(samples, 'proxy_bytes_total', { listener: 'dead', direction }), 0);
    }
    assert.equal(total(samples, 'proxy_connections_accepted_total', { listener: 'web' }), 4);
    assert.equal(total(samples, 'proxy_connections_accepted_total', { listener: 'dead' }), 1);
    assert.equal(total(samples, 'proxy_connections_active', { listener: 'web' }), 0);
    const closedBy = (listener: string, cause: string): number =>
      total(samples, 'proxy_connections_closed_total', { listener, cause });
    assert.equal(closedBy('web', 'client_fin'), 3);
    assert.equal(closedBy('web', 'admin_kill'), 1);
    assert.equal(total(samples, 'proxy_connections_closed_total', { listener: 'web' }), 4);
    assert.equal(closedBy('dead', 'connect_refused'), 1);
    assert.equal(
      total(samples, 'proxy_connect_failures_total', {
        listener: 'dead',
        target: refused,
        code: 'ECONNREFUSED',
      }),
      1,
    );
    assert.equal(total(samples, 'proxy_connect_failures_total', { listener: 'web' }), 0);
    assert.equal(
      total(samples, 'proxy_target_drained', { listener: 'web', target: upstream.address }),
      0,
    );

    // Histograms: one observation per successful connect, one per closed connection.
    assert.equal(types.get('proxy_connect_duration_seconds'), 'histogram');
    assert.equal(types.get('proxy_connection_duration_seconds'), 'histogram');
    assert.equal(
      total(samples, 'proxy_connect_duration_seconds_count', {
        listener: 'web',
        target: upstream.address,
      }),
      4,
    );
    assert.equal(total(samples, 'proxy_connect_duration_seconds_count', { listener: 'dead' }), 0);
    assert.equal(total(samples, 'proxy_connection_duration_seconds_count', { listener: 'web' }), 4);
    assert.equal(
      total(samples, 'proxy_connection_duration_seconds_count', { listener: 'dead' }),
      1,
    );
    assert.equal(
      total(samples, 'proxy_connection_duration_seconds_bucket', { listener: 'web', le: '+Inf' }),
      4,
    );
    assert.equal(types.get('proxy_bytes_total'), 'counter');
    assert.equal(types.get('proxy_connections_active'), 'gauge');
  });

  test('counts the bytes of connections that are still open', async (t) => {
    const { base, port } = await setup(t);
    await echoed(t, port, Buffer.alloc(12_345, 'o'));
    const { samples } = parseExposition(await (await fetch(`${base}/metrics`)).text());
    assert.equal(total(samples, 'proxy_connections_active', { listener: 'web' }), 1);
    for (const direction of ['to_upstream', 'to_client']) {
      assert.equal(total(samples, 'proxy_bytes_total', { listener: 'web', direction }), 12_345);
    }
    // A connection counts in the duration histogram only once it has closed.
    assert.equal(total(samples, 'proxy_connection_duration_seconds_count'), 0);
    assert.equal(total(samples, 'proxy_connect_duration_seconds_count'), 1);
  });

  test('the exposition parser reads labels with escapes and values', () => {
    const { samples, types } = parseExposition(
      [
        '# HELP x_total Things.',
        '# TYPE x_total counter',
        'x_total{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 3',
        'x_total 4.5',
        'y_bucket{le="+Inf"} +Inf',
        '',
      ].join('\n'),
    );
    assert.equal(types.get('x_total'), 'counter');
    assert.deepEqual(samples[0], {
      name: 'x_total',
      labels: { a: 'q"uote', b: 'back\\slash', c: 'new\nline' },
      value: 3,
    });
    assert.equal(total(samples, 'x_total'), 7.5);
    assert.equal(samples[2]?.value, Infinity);
  });
});

test('an admin server that closes stops observing the proxy: none left behind after many', async (t) => {
  // A library may start and stop admin servers on one proxy; each observes the proxy's
  // connection events for its histograms and must let go of them when it closes.
  const upstream = await startUpstream(t, echo);
  const proxy = await startProxy(t, { listen: '127.0.0.1:0', targets: [upstream.address] });
  const before = proxy.listenerCount('connectionClose') + proxy.listenerCount('connectionConnect');
  for (let i = 0; i < 12; i++) {
    const admin = new AdminServer(proxy, { listen: LOOPBACK });
    await admin.listen();
    const address = admin.address();
    assert.ok(address !== null);
    const res = await fetch(`http://127.0.0.1:${address.port}/metrics`);
    assert.equal(res.status, 200);
    await res.text();
    await admin.close();
  }
  const after = proxy.listenerCount('connectionClose') + proxy.listenerCount('connectionConnect');
  assert.equal(after, before);
});

test('an admin address that cannot be bound is named, with the reason in words', async (t) => {
  // 192.0.2.1 (TEST-NET-1) is on no interface of this host: the bind fails at once,
  // no packet leaves the machine.
  const upstream = await startUpstream(t, echo);
  const proxy = await startProxy(t, { listen: '127.0.0.1:0', targets: [upstream.address] });
  const admin = new AdminServer(proxy, { listen: { host: '192.0.2.1', port: 0 }, token: 'x' });
  await assert.rejects(admin.listen(), {
    code: 'PROXY_ERR_LISTEN',
    message: 'admin listen 192.0.2.1:0: address not available on this host',
  });
  await admin.close().catch(() => {});
  // The address in use, the common case, is said the same way as for a listener.
  const taken = new AdminServer(proxy, { listen: LOOPBACK });
  await taken.listen();
  t.after(() => taken.close());
  const port = taken.address()?.port;
  const second = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: port ?? 0 } });
  await assert.rejects(second.listen(), {
    code: 'PROXY_ERR_LISTEN',
    message: `admin listen 127.0.0.1:${port}: address in use`,
  });
  await second.close().catch(() => {});
});
