/**
 * How the workers of `--workers N` get their connections (docs/design.md §11):
 *
 * - `reuseport`: each worker binds its own listening socket on the listener's address
 *   with `SO_REUSEPORT` (`net.Server.listen({ reusePort: true, exclusive: true })`,
 *   Node.js 22.12 / 23.1 and later, Linux), and the kernel spreads new connections
 *   over the sockets by a hash of the client's address and port. The primary takes
 *   no part in accepting.
 * - `handover`: node:cluster's round-robin handle. The primary listens, accepts every
 *   connection and passes its descriptor to the next worker over the IPC channel.
 *
 * The primary decides once, at start: `reuseport` when `probeReusePort` shows this
 * Node.js and kernel can do it, unless the operator asks for `handover` with
 * `L4PROXY_WORKER_ACCEPT=handover`. It hands its choice to every worker it forks in
 * the same variable. Even in `reuseport` mode a listener takes the handover path when
 * its own socket cannot serve: a Unix socket (no `SO_REUSEPORT` for those), a socket
 * passed by systemd (one descriptor, held by the primary) and port 0 (each worker
 * would be given a port of its own).
 */
import { createServer, type ListenOptions, type Server } from 'node:net';
import { listenErrorText } from './errors.js';
import type { Logger } from './log.js';

/** WorkerAccept is how workers get connections: each its own socket, or from the primary. */
export type WorkerAccept = 'reuseport' | 'handover';

/**
 * WORKER_ACCEPT_ENV names the environment variable that chooses the mode: the operator
 * may set it for the primary (`handover` or `reuseport`; unset is the default), and
 * the primary sets it to its resolved choice for every worker it forks.
 */
export const WORKER_ACCEPT_ENV = 'L4PROXY_WORKER_ACCEPT';

/**
 * parseWorkerAccept reads WORKER_ACCEPT_ENV from `env`: undefined when unset or empty,
 * else the mode. Throws an Error naming the variable for any other value.
 */
export function parseWorkerAccept(env: NodeJS.ProcessEnv): WorkerAccept | undefined {
  const value = env[WORKER_ACCEPT_ENV];
  if (value === undefined || value === '') return undefined;
  if (value === 'reuseport' || value === 'handover') return value;
  throw new Error(
    `${WORKER_ACCEPT_ENV}: expected reuseport or handover, got ${JSON.stringify(value)}`,
  );
}

/**
 * probeReusePort says whether two sockets in this process can listen on one port with
 * `reusePort`: a feature test, not a version check. A Node.js without the option
 * ignores it, and the second bind fails with EADDRINUSE; so does a kernel without
 * `SO_REUSEPORT`. Only Linux balances such sockets, so elsewhere it is false at once.
 */
export async function probeReusePort(): Promise<boolean> {
  if (process.platform !== 'linux') return false;
  const first = createServer();
  const second = createServer();
  try {
    await listenOn(first, { host: '127.0.0.1', port: 0, reusePort: true, exclusive: true });
    const address = first.address();
    if (address === null || typeof address === 'string') return false;
    await listenOn(second, {
      host: '127.0.0.1',
      port: address.port,
      reusePort: true,
      exclusive: true,
    });
    return true;
  } catch {
    return false;
  } finally {
    first.close();
    second.close();
  }
}

/** TcpAddress is a listener's TCP address: `text` as errors name it (`0.0.0.0:8080`). */
export interface TcpAddress {
  readonly host: string | undefined;
  readonly port: number;
  readonly text: string;
}

/**
 * bindAlone binds `address` without `reusePort` and closes it again; it rejects with
 * the bind's error. Linux lets a socket with `SO_REUSEPORT` join another process's
 * group on the same address when both belong to one user, so before `reuseport`
 * workers bind, the primary checks with this that nobody holds the address: a second
 * proxy started by mistake then fails with "address in use", as under `handover`,
 * instead of quietly taking half the first one's clients.
 */
export async function bindAlone(address: TcpAddress): Promise<void> {
  const server = createServer();
  await listenOn(server, { host: address.host, port: address.port, exclusive: true });
  await new Promise((resolve) => server.close(resolve));
}

/**
 * chooseWorkerAccept is the primary's decision: `handover` if `asked` so, else
 * `reuseport` where `probeReusePort` finds it works, else `handover`, with a warning
 * on `log` if `reuseport` was asked for.
 */
export async function chooseWorkerAccept(
  asked: WorkerAccept | undefined,
  log: Logger,
): Promise<WorkerAccept> {
  if (asked === 'handover') return 'handover';
  if (await probeReusePort()) return 'reuseport';
  if (asked === 'reuseport') {
    log.warn(
      `${WORKER_ACCEPT_ENV}=reuseport: this Node.js or system cannot listen with reusePort; the primary hands connections over`,
      { node: process.version, platform: process.platform },
    );
  }
  return 'handover';
}

/**
 * heldAddress binds each of `addresses` (but port 0) alone in turn (`bindAlone`) and
 * returns the error line of the first that cannot be bound, as a worker's listen
 * would word it (`listen 0.0.0.0:80: address in use`), or null if all are free.
 */
export async function heldAddress(addresses: readonly TcpAddress[]): Promise<string | null> {
  for (const address of addresses) {
    if (address.port === 0) continue;
    try {
      await bindAlone(address);
    } catch (err) {
      return `listen ${address.text}: ${listenErrorText(err)}`;
    }
  }
  return null;
}

/** ListenWithReusePort: `reusePort` is missing from the ListenOptions of Node.js 20's types. */
type ListenWithReusePort = ListenOptions & { reusePort?: boolean };

function listenOn(server: Server, options: ListenWithReusePort): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}

/** #ownSockets: this process is a worker told to bind its own sockets (`reuseport`). */
let ownSockets = false;

/**
 * useWorkerAccept sets this process's mode; a worker calls it once, before it
 * listens, with what the primary chose. Every process starts in `handover`, which
 * outside a worker is simply an ordinary listen.
 */
export function useWorkerAccept(mode: WorkerAccept | undefined): void {
  ownSockets = mode === 'reuseport';
}

/**
 * tcpListenOptions are the options a listener passes to `net.Server.listen` for a TCP
 * address: in a `reuseport` worker, with `reusePort` and `exclusive` (node:cluster
 * then binds in this process instead of asking the primary), unless the port is 0.
 */
export function tcpListenOptions(host: string | undefined, port: number): ListenOptions {
  if (!ownSockets || port === 0) return { host, port };
  const options: ListenWithReusePort = { host, port, reusePort: true, exclusive: true };
  return options;
}
