/**
 * Test helpers: real sockets on 127.0.0.1, port 0, cleaned up through `t.after`.
 * No mocks: an upstream server, a proxy from the library, and a client that
 * records everything it sees (bytes, FIN, reset, close).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { createProxy, type ProxyOptions, type TcpProxy } from '../../src/index.js';
import { deadline } from './time.js';

/** Upstream is a server on loopback that remembers its sockets so the test can close them. */
export interface Upstream {
  server: Server;
  port: number;
  address: string;
  sockets: Socket[];
  /** accepted resolves with the n-th accepted socket (0-based). */
  accepted(n?: number): Promise<Socket>;
}

/** startUpstream starts a server on 127.0.0.1:0 (or `host`) that hands each socket to `onSocket`. */
export async function startUpstream(
  t: TestContext,
  onSocket: (socket: Socket) => void = () => {},
  host = '127.0.0.1',
): Promise<Upstream> {
  const sockets: Socket[] = [];
  const waiters: { n: number; resolve: (s: Socket) => void }[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onSocket(socket);
    for (const w of waiters.filter((w) => w.n < sockets.length)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(sockets[w.n] as Socket);
    }
  });
  server.listen(0, host);
  await once(server, 'listening');
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    server,
    port: addr.port,
    address: host.includes(':') ? `[${host}]:${addr.port}` : `${host}:${addr.port}`,
    sockets,
    accepted(n = 0) {
      const existing = sockets[n];
      if (existing !== undefined) return Promise.resolve(existing);
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
}

/** echo pipes a socket back to itself, half-close included. */
export function echo(socket: Socket): void {
  socket.pipe(socket);
}

/** answerGot answers each chunk with `got <chunk>`, and ends its side after the peer's FIN. */
export function answerGot(socket: Socket): void {
  socket.on('data', (chunk: Buffer) => socket.write(`got ${chunk}`));
  socket.on('end', () => socket.end());
}

/** startProxy starts a proxy from the library on 127.0.0.1:0 and closes it after the test. */
export async function startProxy(
  t: TestContext,
  options: Partial<ProxyOptions> & { targets: readonly string[] },
): Promise<{ proxy: TcpProxy; port: number; address: string }> {
  const proxy = createProxy({ listen: '127.0.0.1:0', ...options } as ProxyOptions);
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const addr = proxy.address();
  if (addr === null) throw new Error('proxy has no address');
  return { proxy, port: addr.port, address: `127.0.0.1:${addr.port}` };
}

/** RecordingClient is a client socket plus what happened to it. */
export interface RecordingClient {
  socket: Socket;
  chunks: Buffer[];
  /** received is every byte so far, concatenated. */
  received(): Buffer;
  /** ended resolves when the peer's FIN arrives. */
  ended: Promise<void>;
  /** closed resolves when the socket closed, with the error code if it was an error. */
  closed: Promise<string | null>;
  sawEnd: boolean;
  errorCode: string | null;
}

/** connectClient connects to 127.0.0.1:port (allowHalfOpen) and records everything. */
export function connectClient(port: number, host = '127.0.0.1'): RecordingClient {
  const socket = netConnect({ port, host, allowHalfOpen: true });
  const client: RecordingClient = {
    socket,
    chunks: [],
    received: () => Buffer.concat(client.chunks),
    ended: once(socket, 'end').then(() => {}),
    closed: new Promise((resolve) => socket.once('close', () => resolve(client.errorCode))),
    sawEnd: false,
    errorCode: null,
  };
  client.ended.catch(() => {});
  socket.on('data', (chunk: Buffer) => client.chunks.push(chunk));
  socket.on('end', () => {
    client.sawEnd = true;
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    client.errorCode = err.code ?? 'UNKNOWN';
  });
  return client;
}

/**
 * waitFor polls `check` every 10 ms until it is true, or fails after `timeoutMs`
 * scaled for a busy machine (`deadline(timeoutMs)`, see time.ts): callers name the
 * time something takes on an idle machine.
 */
export async function waitFor(
  check: () => boolean,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const limitMs = deadline(timeoutMs);
  const endMs = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > endMs) throw new Error(`timed out after ${limitMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** refusedAddress returns 127.0.0.1:PORT where nothing listens (a port just freed). */
export async function refusedAddress(): Promise<string> {
  // The kernel may hand the same free port out twice in a row; a test that asks for
  // several refused targets needs distinct ones, so a port given out before is skipped.
  for (let tries = 0; tries < 20; tries++) {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const addr = server.address();
    await new Promise((r) => server.close(r));
    if (addr === null || typeof addr === 'string') throw new Error('no address');
    if (givenRefusedPorts.has(addr.port)) continue;
    givenRefusedPorts.add(addr.port);
    return `127.0.0.1:${addr.port}`;
  }
  throw new Error('refusedAddress: no new free port in 20 tries');
}

/** givenRefusedPorts: the ports refusedAddress has handed out in this process. */
const givenRefusedPorts = new Set<number>();

/**
 * refusedTarget is an address on 127.0.0.1 that refuses connections for the whole test,
 * for a target that must fail: a port below 1024, which the kernel never hands out for
 * port 0 (its ephemeral range starts far above), and which this call finds refused now.
 * A new one on each call, while there are. refusedAddress (a port just freed) is for an
 * address to listen on later: as a target it can stop refusing, when the kernel gives
 * that port to another listener meanwhile (a test running beside, or the proxy's own
 * admin server on port 0).
 */
export async function refusedTarget(): Promise<string> {
  while (nextRefusedTarget > 512) {
    const port = nextRefusedTarget;
    nextRefusedTarget -= 1;
    if (await refuses(port)) return `127.0.0.1:${port}`;
  }
  throw new Error('refusedTarget: no refused port left below 1024');
}

/** nextRefusedTarget: the next low port refusedTarget tries (downwards). */
let nextRefusedTarget = 1023;

// refuses connects to 127.0.0.1:port once and says whether it was refused.
function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

const BLACKHOLE = `
const net = require('node:net');
const s = net.createServer();
s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
  process.stdout.write(s.address().port + '\\n');
  // Block the event loop: nothing is accepted, the accept queue fills, and the
  // kernel drops further SYNs, so connects to this port hang until they time out.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
});`;

/**
 * blackholeAddress starts a listener (in a child process, ended by PID after the
 * test) whose accept queue is full: a connect to it neither succeeds nor fails.
 */
export async function blackholeAddress(t: TestContext): Promise<string> {
  const child: ChildProcess = spawn(process.execPath, ['-e', BLACKHOLE], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const [line] = (await once(child.stdout ?? child, 'data')) as [Buffer];
  const port = Number(String(line).trim());
  // Fill the queue: with backlog 1 the kernel completes two handshakes, then drops SYNs.
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
    await once(s, 'connect');
  }
  t.after(() => {
    for (const s of fillers) s.destroy();
  });
  return `127.0.0.1:${port}`;
}

/** randomBytes returns a deterministic pseudo-random buffer (fast, reproducible). */
export function patternBytes(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}
