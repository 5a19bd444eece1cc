/**
 * The PROXY protocol against real peers, started by the tests: haproxy sending
 * `send-proxy` and `send-proxy-v2` to our accepting proxy, haproxy (`accept-proxy`)
 * and nginx (`listen ... proxy_protocol`) receiving what our preface writes, haproxy
 * in front of us and nginx behind (the received addresses passed on), and haproxy in
 * TCP mode in front of our TLS listener (`--accept-proxy` with `--tls-cert`). The hooks
 * are given through `kConnectionHooks`, or as the library's options.
 *
 * Each test is skipped, with a message saying how to install the peer, when the peer
 * is not on the PATH (`apt-get install -y haproxy nginx`).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type AdmissionOptions, admissionHooks } from '../src/admission.js';
import { kConnectionHooks } from '../src/handshake.js';
import type { ConnectionInfo, TcpProxy } from '../src/index.js';
import { parseProxyHeader } from '../src/proxy-protocol/parse.js';
import { withTimeout } from './helpers/cli.js';
import { answerGot, startProxy, startUpstream } from './helpers/net.js';
import { deadline } from './helpers/time.js';
import { makeCertificate } from './helpers/tls.js';

function installed(command: string): boolean {
  return spawnSync(command, ['-v'], { stdio: 'ignore' }).error === undefined;
}
const HAPROXY = installed('haproxy');
const NGINX = installed('nginx');
// In CI (.ci/run installs both) a missing peer is a failure, never a silent skip.
const IN_CI = process.env['CI'] === 'true';
const SKIP_HAPROXY =
  HAPROXY || IN_CI ? false : 'haproxy is not installed (apt-get install -y haproxy)';
// Debian's nginx has its stream module as a separate, dynamic one.
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const SKIP_NGINX = IN_CI
  ? false
  : !NGINX
    ? 'nginx is not installed (apt-get install -y nginx libnginx-mod-stream)'
    : !existsSync(STREAM_MODULE)
      ? `nginx's stream module is not at ${STREAM_MODULE} (apt-get install -y libnginx-mod-stream)`
      : false;

/** freePort: a port nothing listens on just now (peers cannot be told to pick port 0 and say which). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** canConnect: something accepts on 127.0.0.1:port now. */
function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * listensOn: process `pid` itself holds a socket listening on 127.0.0.1:port (Linux
 * /proc). Merely connecting is not proof: between freePort() and the peer's bind, a
 * test running beside this one may have been given the same port by the kernel.
 */
function listensOn(pid: number, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // local_address is fields[1] (ADDR:PORT in hex), st is fields[3] (0A = LISTEN), inode fields[9].
    if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A' && fields[9] !== undefined)
      inodes.add(`socket:[${fields[9]}]`);
  }
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false; // the peer is gone
  }
  for (const fd of fds) {
    try {
      if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
    } catch {
      // the descriptor was closed while we looked
    }
  }
  return false;
}

/** startPeer runs a peer in the foreground, ended by its PID after the test; resolves once it listens on `readyPort` itself and accepts there. */
async function startPeer(
  t: TestContext,
  command: string,
  args: string[],
  readyPort: number,
): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  const endMs = Date.now() + deadline(10_000);
  while (
    !(child.pid !== undefined && listensOn(child.pid, readyPort) && (await canConnect(readyPort)))
  ) {
    if (child.exitCode !== null) throw new Error(`${command} exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > endMs) throw new Error(`${command} did not listen on ${readyPort}: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return child;
}

/** haproxyConfig: a TCP frontend on `front` to one server, plus a `ready` frontend that only says it listens. */
function haproxyConfig(dir: string, ready: number, front: string, server: string): string {
  const path = join(dir, 'haproxy.cfg');
  writeFileSync(
    path,
    [
      'global',
      '  maxconn 64',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 30s',
      'frontend ready',
      `  bind 127.0.0.1:${ready}`,
      '  tcp-request connection reject',
      'frontend fe',
      `  bind ${front}`,
      '  default_backend be',
      'backend be',
      `  server s1 ${server}`,
      '',
    ].join('\n'),
  );
  return path;
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-peers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function withHooks(admission: AdmissionOptions): object {
  return { [kConnectionHooks]: admissionHooks(admission) };
}

/** An upstream that collects each connection's bytes until FIN, then ends its side too. */
async function collectingUpstream(t: TestContext) {
  const got: Promise<Buffer>[] = [];
  const upstream = await startUpstream(t, (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    got.push(once(socket, 'end').then(() => Buffer.concat(chunks)));
    socket.on('end', () => socket.end());
  });
  return { upstream, got };
}

async function clientFrom(port: number, from: string, host = '127.0.0.1'): Promise<Socket> {
  const socket = connect({ port, host, localAddress: from, allowHalfOpen: true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

function nextClose(proxy: TcpProxy): Promise<ConnectionInfo> {
  return new Promise((resolve) => proxy.once('connectionClose', resolve));
}

for (const send of ['send-proxy', 'send-proxy-v2'] as const) {
  test(`haproxy with ${send} in front: our proxy reads its header, the client is the one haproxy saw, the data passes unchanged`, {
    skip: SKIP_HAPROXY,
  }, async (t) => {
    const { upstream, got } = await collectingUpstream(t);
    const { proxy, port } = await startProxy(t, {
      targets: [upstream.address],
      ...withHooks({ acceptProxy: true }),
    });
    const [ready, front] = [await freePort(), await freePort()];
    const config = haproxyConfig(
      tempDir(t),
      ready,
      `127.0.0.1:${front}`,
      `127.0.0.1:${port} ${send}`,
    );
    await startPeer(t, 'haproxy', ['-db', '-f', config], ready);
    const closed = nextClose(proxy);
    const client = await clientFrom(front, '127.0.0.9');
    client.end('through haproxy');
    await upstream.accepted();
    assert.equal((await (got[0] as Promise<Buffer>)).toString(), 'through haproxy');
    const info = await closed;
    assert.equal(info.client, `127.0.0.9:${client.localPort}`);
  });
}

for (const version of ['v1', 'v2'] as const) {
  test(`our ${version} preface is accepted by haproxy with accept-proxy, which passes our client's address on`, {
    skip: SKIP_HAPROXY,
  }, async (t) => {
    // client → our proxy (send-proxy) → haproxy (accept-proxy, send-proxy-v2) → upstream
    const { upstream, got } = await collectingUpstream(t);
    const [ready, front] = [await freePort(), await freePort()];
    const config = haproxyConfig(
      tempDir(t),
      ready,
      `127.0.0.1:${front} accept-proxy`,
      `${upstream.address} send-proxy-v2`,
    );
    await startPeer(t, 'haproxy', ['-db', '-f', config], ready);
    const { port } = await startProxy(t, {
      targets: [`127.0.0.1:${front}`],
      ...withHooks({ sendProxy: version }),
    });
    const client = await clientFrom(port, '127.0.0.10');
    client.end('through us and haproxy');
    await upstream.accepted();
    const result = parseProxyHeader(await (got[0] as Promise<Buffer>));
    assert.equal(result.status, 'done', JSON.stringify(result));
    if (result.status !== 'done') return;
    assert.deepEqual(result.header.source, { address: '127.0.0.10', port: client.localPort });
    assert.deepEqual(result.header.destination, { address: '127.0.0.1', port });
    assert.equal(result.rest.toString(), 'through us and haproxy');
  });
}

/** startNginxEcho: nginx's stream module on a free port, answering each PROXY header with `src:port>dst:port`. */
async function startNginxEcho(t: TestContext): Promise<number> {
  const dir = tempDir(t);
  const [ready, front] = [await freePort(), await freePort()];
  const config = join(dir, 'nginx.conf');
  writeFileSync(
    config,
    [
      'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
      'daemon off;',
      'master_process off;',
      `pid ${join(dir, 'nginx.pid')};`,
      'error_log stderr error;',
      'events { worker_connections 64; }',
      'stream {',
      `  server { listen 127.0.0.1:${ready}; return "ready"; }`,
      `  server { listen 127.0.0.1:${front} proxy_protocol; return "$proxy_protocol_addr:$proxy_protocol_port>$proxy_protocol_server_addr:$proxy_protocol_server_port"; }`,
      '}',
      '',
    ].join('\n'),
  );
  await startPeer(t, 'nginx', ['-p', dir, '-c', config, '-e', 'stderr'], ready);
  return front;
}

/** answerOf: everything `client` reads until the peer's FIN. */
async function answerOf(client: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  client.on('data', (c: Buffer) => chunks.push(c));
  await once(client, 'end');
  return Buffer.concat(chunks).toString();
}

test('haproxy (TCP mode, send-proxy-v2) in front of our TLS listener with accept-proxy: a TLS client through haproxy completes its session, and we see the client haproxy saw', {
  skip: SKIP_HAPROXY,
}, async (t) => {
  // TLS client → haproxy (mode tcp: the TLS passes through; send-proxy-v2) → our proxy (--accept-proxy, --tls-cert) → upstream
  const dir = tempDir(t);
  const cert = await makeCertificate(dir, 'proxy', 'localhost');
  const upstream = await startUpstream(t, answerGot);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    acceptProxy: true,
    tlsCert: cert.certPath,
    tlsKey: cert.keyPath,
    log: { level: 'silent' },
  });
  const [ready, front] = [await freePort(), await freePort()];
  const config = haproxyConfig(dir, ready, `127.0.0.1:${front}`, `127.0.0.1:${port} send-proxy-v2`);
  await startPeer(t, 'haproxy', ['-db', '-f', config], ready);
  const closed = nextClose(proxy);
  const raw = await clientFrom(front, '127.0.0.13');
  const secure = tlsConnect({ socket: raw, ca: cert.cert, servername: 'localhost' });
  secure.on('error', () => {});
  await withTimeout(once(secure, 'secureConnect'), 5000, 'the TLS handshake through haproxy');
  secure.write('hello');
  const [answer] = (await withTimeout(once(secure, 'data'), 5000, 'the answer')) as [Buffer];
  assert.equal(answer.toString(), 'got hello');
  secure.end();
  const info = await closed;
  assert.equal(info.client, `127.0.0.13:${raw.localPort}`);
  assert.ok(info.clientTls?.version, 'our proxy terminated the TLS session');
});

test("our v1 and v2 prefaces are read by nginx's stream module (listen ... proxy_protocol)", {
  skip: SKIP_NGINX,
}, async (t) => {
  const front = await startNginxEcho(t);
  for (const version of ['v1', 'v2'] as const) {
    const { port } = await startProxy(t, {
      targets: [`127.0.0.1:${front}`],
      ...withHooks({ sendProxy: version }),
    });
    const client = await clientFrom(port, '127.0.0.11');
    assert.equal(
      await answerOf(client),
      `127.0.0.11:${client.localPort}>127.0.0.1:${port}`,
      version,
    );
    client.destroy();
  }
});

test('haproxy (send-proxy-v2) in front of us (accept and send) in front of nginx: nginx sees the client and the address it connected to at haproxy', {
  skip: SKIP_HAPROXY || SKIP_NGINX,
}, async (t) => {
  // client → haproxy (send-proxy-v2) → our proxy (--accept-proxy --send-proxy v1|v2) → nginx
  const nginx = await startNginxEcho(t);
  for (const version of ['v1', 'v2'] as const) {
    const { port } = await startProxy(t, {
      targets: [`127.0.0.1:${nginx}`],
      ...withHooks({ acceptProxy: true, sendProxy: version }),
    });
    const [ready, front] = [await freePort(), await freePort()];
    const config = haproxyConfig(
      tempDir(t),
      ready,
      `127.0.0.2:${front}`,
      `127.0.0.1:${port} send-proxy-v2`,
    );
    await startPeer(t, 'haproxy', ['-db', '-f', config], ready);
    const client = await clientFrom(front, '127.0.0.12', '127.0.0.2');
    // haproxy dials our proxy only once its client sends or after a while: say something.
    client.write('hello');
    const answer = await answerOf(client);
    assert.equal(answer, `127.0.0.12:${client.localPort}>127.0.0.2:${front}`, version);
    client.destroy();
  }
});
