/**
 * The admin server's safety (CLI contract, "Admin server safety" and "Health
 * endpoints for orchestrators"), through the library and real HTTP on 127.0.0.1:
 * Host and Origin checks against DNS rebinding and cross-site requests, bodies that
 * are never read, header deadlines, the bound on admin connections, and the probes.
 * Raw sockets play the clients that a normal HTTP client would not be: endless and
 * huge bodies, headers that never end, idle connections.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { describe, test } from 'node:test';
import { parseArgv } from '../src/config/args.js';
import { readConfigFile } from '../src/config/file.js';
import { type AdminOptions, AdminServer, createProxy, type TcpProxy } from '../src/index.js';
import { connectClient, echo, startUpstream, waitFor } from './helpers/net.js';

// ---------------------------------------------------------------- helpers

interface Setup {
  proxy: TcpProxy;
  admin: AdminServer;
  port: number;
  target: string;
  proxyPort: number;
}

/** setup: a proxy with listener `web` in front of an echo upstream, and its admin server on 127.0.0.1:0. */
async function setup(t: TestContext, options: Partial<AdminOptions> = {}): Promise<Setup> {
  const upstream = await startUpstream(t, echo);
  const proxy = createProxy({
    listeners: [{ name: 'web', listen: '127.0.0.1:0', targets: [upstream.address] }],
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 }, ...options });
  await admin.listen();
  t.after(() => admin.close());
  const address = admin.address();
  assert.ok(address !== null);
  const proxyPort = proxy.address()?.port;
  assert.ok(proxyPort !== undefined);
  return { proxy, admin, port: address.port, target: upstream.address, proxyPort };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** ask sends one request with exactly these headers (Host included) and reads the answer. */
function ask(
  where: { port: number } | { socketPath: string },
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { ...where, host: '127.0.0.1', method, path, headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** RawClient is a TCP connection to the admin server that records what comes back and when it closes. */
interface RawClient {
  socket: Socket;
  received(): string;
  readonly closed: boolean;
}

function rawClient(port: number): RawClient {
  const socket = connect({ host: '127.0.0.1', port });
  let received = '';
  let closed = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  // A reset is one way the server may close: only that it closed matters here.
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  return {
    socket,
    received: () => received,
    get closed() {
      return closed;
    },
  };
}

const drainPath = (target: string) =>
  `/api/listeners/web/targets/${encodeURIComponent(target)}/drain`;

async function targetState(proxy: TcpProxy, address: string): Promise<string | undefined> {
  const info = proxy.listenerInfo().find((l) => l.name === 'web');
  return info?.targets.find((t) => t.address === address)?.state;
}

// ---------------------------------------------------------------- Host (DNS rebinding)

describe('the Host header', () => {
  test('a request for another host name gets 403 (a DNS-rebinding page cannot read the API)', async (t) => {
    const { port } = await setup(t);
    for (const host of ['evil.example', `evil.example:${port}`, 'localhost.evil.example']) {
      const answer = await ask({ port }, 'GET', '/api/connections', { Host: host });
      assert.equal(answer.status, 403, host);
      assert.match(answer.body, /is not this admin server's/);
    }
    // The status page and the probes are not exempt.
    assert.equal((await ask({ port }, 'GET', '/', { Host: 'evil.example' })).status, 403);
    assert.equal((await ask({ port }, 'GET', '/healthz', { Host: 'evil.example' })).status, 403);
  });

  test('the loopback names and the own address are answered, with or without a port', async (t) => {
    const { port } = await setup(t);
    for (const host of [
      'localhost',
      `localhost:${port}`,
      'LOCALHOST:8080',
      '127.0.0.1',
      `127.0.0.1:${port}`,
      '[::1]',
      `[::1]:${port}`,
    ]) {
      assert.equal(
        (await ask({ port }, 'GET', '/api/connections', { Host: host })).status,
        200,
        host,
      );
    }
  });

  test('names given as hosts (--admin-host) are answered, in any case', async (t) => {
    const { port } = await setup(t, { hosts: ['proxy.internal', 'fd00::5'] });
    for (const host of ['proxy.internal', 'Proxy.Internal:9090', '[fd00::5]:1']) {
      assert.equal((await ask({ port }, 'GET', '/api/status', { Host: host })).status, 200, host);
    }
    assert.equal(
      (await ask({ port }, 'GET', '/api/status', { Host: 'other.internal' })).status,
      403,
    );
  });

  test('a Unix-socket admin server answers any Host, and still refuses cross-site changes', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'proxy-admin-safety-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const upstream = await startUpstream(t, echo);
    const proxy = createProxy({
      listeners: [{ name: 'web', listen: '127.0.0.1:0', targets: [upstream.address] }],
    });
    await proxy.listen();
    t.after(() => proxy.close({ graceful: false }));
    const socketPath = join(dir, 'admin.sock');
    const admin = new AdminServer(proxy, { listen: { path: socketPath } });
    await admin.listen();
    t.after(() => admin.close());
    const where = { socketPath };
    assert.equal((await ask(where, 'GET', '/api/status', { Host: 'docker' })).status, 200);
    const refused = await ask(where, 'POST', drainPath(upstream.address), {
      Host: 'localhost',
      Origin: 'http://evil.example',
    });
    assert.equal(refused.status, 403);
    assert.equal(await targetState(proxy, upstream.address), 'up');
  });
});

// ---------------------------------------------------------------- Origin (cross-site requests)

describe('cross-site requests', () => {
  test('a cross-site POST (text/plain, no preflight) gets 403 and drains nothing', async (t) => {
    const { port, proxy, target } = await setup(t);
    const host = `127.0.0.1:${port}`;
    const cases: Record<string, string>[] = [
      { Origin: 'http://evil.example', 'Content-Type': 'text/plain' },
      { Origin: 'null' },
      { Origin: `http://localhost:${port + 1}` },
      { 'Sec-Fetch-Site': 'cross-site' },
      // Another port on localhost is the same site, but not the same origin.
      { 'Sec-Fetch-Site': 'same-site' },
      { Origin: `http://${host}`, 'Sec-Fetch-Site': 'cross-site' },
    ];
    for (const headers of cases) {
      const answer = await ask({ port }, 'POST', drainPath(target), { Host: host, ...headers });
      assert.equal(answer.status, 403, JSON.stringify(headers));
      assert.match(answer.body, /cross-(site|origin) request refused/);
    }
    const kill = await ask({ port }, 'DELETE', '/api/connections/1', {
      Host: host,
      Origin: 'http://evil.example',
    });
    assert.equal(kill.status, 403);
    assert.equal(await targetState(proxy, target), 'up');
  });

  test('the own origin, Sec-Fetch-Site none, and clients that send neither (curl) may change things', async (t) => {
    const { port, proxy, target } = await setup(t);
    const host = `127.0.0.1:${port}`;
    const allowed: Record<string, string>[] = [
      { Origin: `http://${host}`, 'Sec-Fetch-Site': 'same-origin' },
      { 'Sec-Fetch-Site': 'none' },
      {},
    ];
    for (const headers of allowed) {
      const answer = await ask({ port }, 'POST', drainPath(target), { Host: host, ...headers });
      assert.equal(answer.status, 200, JSON.stringify(headers));
    }
    assert.equal(await targetState(proxy, target), 'drained');
  });

  test('a GET from another origin is answered, without any CORS header (the page cannot read it)', async (t) => {
    const { port } = await setup(t);
    const answer = await ask({ port }, 'GET', '/api/status', {
      Host: `127.0.0.1:${port}`,
      Origin: 'http://evil.example',
      'Sec-Fetch-Site': 'cross-site',
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['access-control-allow-origin'], undefined);
  });
});

// ---------------------------------------------------------------- probes

describe('GET /healthz and /readyz', () => {
  test("need no token and answer a short status word; /readyz follows the proxy's readiness", async (t) => {
    let ready = false;
    const { port } = await setup(t, { token: 'secret', ready: () => ready });
    const host = { Host: `127.0.0.1:${port}` };
    assert.equal((await ask({ port }, 'GET', '/api/status', host)).status, 401);
    const health = await ask({ port }, 'GET', '/healthz', host);
    assert.equal(health.status, 200);
    assert.equal(health.body.trim(), 'ok');
    const notReady = await ask({ port }, 'GET', '/readyz', host);
    assert.equal(notReady.status, 503);
    assert.equal(notReady.body.trim(), 'not ready');
    ready = true;
    const nowReady = await ask({ port }, 'GET', '/readyz', host);
    assert.equal(nowReady.status, 200);
    assert.equal(nowReady.body.trim(), 'ready');
    assert.equal((await ask({ port }, 'HEAD', '/readyz', host)).status, 200);
  });
});

// ---------------------------------------------------------------- bodies, deadlines, connections

describe('what a client can make the admin server spend', () => {
  test('a 100 MB body without the token gets 401 and the connection is closed, the body unread', async (t) => {
    const { port } = await setup(t, { token: 'secret' });
    const client = rawClient(port);
    t.after(() => client.socket.destroy());
    client.socket.write(
      `POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 100000000\r\n\r\n`,
    );
    client.socket.write(Buffer.alloc(64 * 1024, 0x61));
    // Without the fix the server keeps reading, waiting for the other 99.9 MB.
    await waitFor(() => client.closed, 5000, 'the admin server to close the connection');
    assert.match(client.received(), /^HTTP\/1\.1 401 /);
    assert.match(client.received(), /\r\nConnection: close\r\n/i);
  });

  test('a declared body over 1 MiB gets 413, even with the token', async (t) => {
    const { port } = await setup(t, { token: 'secret' });
    const client = rawClient(port);
    t.after(() => client.socket.destroy());
    client.socket.write(
      `POST /api/reload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer secret\r\nContent-Length: ${1024 * 1024 + 1}\r\n\r\n`,
    );
    await waitFor(() => client.closed, 5000, 'the admin server to close the connection');
    assert.match(client.received(), /^HTTP\/1\.1 413 /);
  });

  test('Expect: 100-continue is never granted: the final answer comes at once', async (t) => {
    const { port } = await setup(t, { token: 'secret' });
    const client = rawClient(port);
    t.after(() => client.socket.destroy());
    client.socket.write(
      `PUT /api/reload HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 10000000\r\n\r\n`,
    );
    await waitFor(() => client.closed, 5000, 'the admin server to close the connection');
    assert.match(client.received(), /^HTTP\/1\.1 401 /);
    assert.doesNotMatch(client.received(), /100 Continue/);
  });

  test('four endless chunked bodies are answered and their connections closed', async (t) => {
    const { port } = await setup(t);
    const clients = Array.from({ length: 4 }, () => rawClient(port));
    t.after(() => {
      for (const c of clients) c.socket.destroy();
    });
    for (const c of clients) {
      c.socket.write(
        `POST /api/reload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
    }
    const chunk = `4000\r\n${'x'.repeat(0x4000)}\r\n`;
    // Keep sending until every connection is closed (bounded by the wait below).
    const pump = setInterval(() => {
      for (const c of clients) if (!c.closed && c.socket.writable) c.socket.write(chunk);
    }, 5);
    t.after(() => clearInterval(pump));
    await waitFor(() => clients.every((c) => c.closed), 5000, 'every endless body to be cut off');
    clearInterval(pump);
    for (const c of clients) assert.match(c.received(), /^HTTP\/1\.1 422 /);
  });

  test('headers that never end are cut off after a few seconds', async (t) => {
    const { port } = await setup(t);
    const slow = rawClient(port);
    const silent = rawClient(port);
    t.after(() => {
      slow.socket.destroy();
      silent.socket.destroy();
    });
    slow.socket.write('GET /api/status HTTP/1.1\r\nHost: localhost\r\n');
    const started = Date.now();
    // Node's default would be 60 s for headers, checked every 30 s.
    await waitFor(() => slow.closed && silent.closed, 15_000, 'both connections to be closed');
    assert.ok(Date.now() - started < 15_000);
  });

  test('at most 64 admin connections: one more is closed at once, and proxying goes on', async (t) => {
    const { port, proxyPort } = await setup(t);
    const idle = Array.from({ length: 64 }, () => rawClient(port));
    t.after(() => {
      for (const c of idle) c.socket.destroy();
    });
    // Each idle one has been accepted once a request on it is answered.
    for (const c of idle) c.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await waitFor(
      () => idle.every((c) => c.received().startsWith('HTTP/1.1 200')),
      10_000,
      'all 64 admin connections to be answered',
    );
    const extra = rawClient(port);
    t.after(() => extra.socket.destroy());
    await waitFor(() => extra.closed, 5000, 'the 65th connection to be closed');
    assert.equal(extra.received(), '');

    const client = connectClient(proxyPort);
    t.after(() => client.socket.destroy());
    client.socket.write('still proxied');
    await waitFor(() => client.received().toString() === 'still proxied', 5000, 'the echo');

    // Once the idle ones are gone, the admin server answers again.
    for (const c of idle) c.socket.destroy();
    await waitFor(() => idle.every((c) => c.closed), 5000, 'the idle connections to close');
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 200; attempt++) {
      status = await ask({ port }, 'GET', '/healthz', { Host: 'localhost' }).then(
        (a) => a.status,
        () => 0,
      );
    }
    assert.equal(status, 200);
  });
});

// ---------------------------------------------------------------- --admin-host and admin.hosts

describe("--admin-host and the config file's admin.hosts", () => {
  test('--admin-host is repeatable, kept with --admin, and checked', () => {
    const command = parseArgv([
      '-l',
      '127.0.0.1:0',
      '-t',
      '127.0.0.1:1',
      '--admin',
      '127.0.0.1:0',
      '--admin-host',
      'proxy.internal',
      '--admin-host',
      '[fd00::5]',
    ]);
    assert.equal(command.kind, 'run');
    assert.deepEqual(command.kind === 'run' && command.admin?.hosts, [
      'proxy.internal',
      '[fd00::5]',
    ]);
    for (const bad of ['proxy.internal:9090', 'bad:80', '[::1', 'a b', 'http://x', '']) {
      assert.throws(
        () => parseArgv(['-l', '1', '-t', '127.0.0.1:1', '--admin', '9', '--admin-host', bad]),
        /--admin-host/,
        bad,
      );
    }
  });

  test('admin.hosts in the config file is read, and a bad name is named with its line', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'proxy-admin-hosts-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const good = join(dir, 'good.yaml');
    writeFileSync(
      good,
      'admin:\n  listen: 127.0.0.1:0\n  hosts: [proxy.internal]\nlisteners:\n  - listen: 127.0.0.1:0\n    targets: [127.0.0.1:1]\n',
    );
    assert.deepEqual(readConfigFile(good).admin?.hosts, ['proxy.internal']);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'admin:\n  listen: 127.0.0.1:0\n  hosts: [ok.internal, "bad:80"]\nlisteners:\n  - listen: 127.0.0.1:0\n    targets: [127.0.0.1:1]\n',
    );
    assert.throws(
      () => readConfigFile(bad),
      /bad\.yaml:3:\d+ admin\.hosts\[1\]: expected a host name/,
    );
  });
});
