/**
 * Targets that say who they are, for the balancing and health tests: a line server on
 * 127.0.0.1 that answers `WHO` with its tag and `PING` with its `pong` word (then
 * ends the connection), and can
 * be stopped and started again on the same port (a target that dies and comes back).
 * `ask` connects a client through the proxy (from a chosen 127.0.0.x source address)
 * and reads which target answered.
 */
import { once } from 'node:events';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import type { LogRecord } from './cli.js';
import { deadline } from './time.js';

/** TagTarget is a line server standing for one target; `address` stays across stop/start. */
export interface TagTarget {
  readonly tag: string;
  readonly address: string;
  readonly port: number;
  /** sockets open now (clients of the proxy and health checks alike). */
  readonly sockets: Set<Socket>;
  /** stop closes the server and every socket: connects to it are refused. */
  stop(): Promise<void>;
  /** start listens again on the same port. */
  start(): Promise<void>;
}

/** startTagTarget starts a line server answering `WHO` with `tag` and `PING` with `pong`. */
export async function startTagTarget(
  t: TestContext,
  tag: string,
  pong = 'PONG',
): Promise<TagTarget> {
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;
  const listen = async (): Promise<void> => {
    const s = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      let buffered = '';
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
          const line = buffered.slice(0, at);
          buffered = buffered.slice(at + 1);
          if (line === 'WHO') socket.write(`${tag}\n`);
          // Like a health endpoint: the answer, then the end.
          else if (line === 'PING') socket.end(`${pong}\n`);
        }
      });
    });
    s.listen(port, '127.0.0.1');
    await once(s, 'listening');
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    port = address.port;
    server = s;
  };
  const stop = async (): Promise<void> => {
    const s = server;
    server = null;
    if (s === null) return;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  t.after(stop);
  return {
    tag,
    address: `127.0.0.1:${port}`,
    port,
    sockets,
    stop,
    start: listen,
  };
}

/** Asked is a client that asked `WHO` through the proxy: the answer and the socket, still open. */
export interface Asked {
  tag: string;
  socket: Socket;
}

/**
 * ask connects to the proxy on `port` (from `localAddress`, default 127.0.0.1), sends
 * `WHO` and resolves with the target's tag once it answers; the socket stays open
 * (the caller ends it). Rejects if the connection closes first or after `timeoutMs`.
 */
export function ask(t: TestContext, port: number, localAddress?: string, timeoutMs = 5000) {
  return new Promise<Asked>((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1', localAddress });
    t.after(() => socket.destroy());
    const limitMs = deadline(timeoutMs);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to WHO within ${limitMs}ms`));
    }, limitMs);
    let text = '';
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const at = text.indexOf('\n');
      if (at < 0) return;
      clearTimeout(timer);
      resolve({ tag: text.slice(0, at), socket });
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new Error('closed before an answer'));
    });
    socket.write('WHO\n');
  });
}

/** tagOf asks once and closes the client at once: which target a new client gets. */
export async function tagOf(t: TestContext, port: number, localAddress?: string): Promise<string> {
  const { tag, socket } = await ask(t, port, localAddress);
  socket.destroy();
  return tag;
}

/** HealthRecord is a `target down` / `target up` log record. */
export type HealthRecord = LogRecord & { target?: string };

/** isHealth matches the `target down`/`target up` record (`msg`) of `address`. */
export function isHealth(msg: 'target down' | 'target up', address: string) {
  return (r: LogRecord): boolean => r.msg === msg && (r as HealthRecord).target === address;
}
