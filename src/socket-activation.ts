/**
 * Socket activation: listening sockets passed in by systemd (or anything that speaks
 * its protocol, such as `systemd-socket-activate`), taken by the listeners instead of
 * binding their addresses.
 *
 * What systemd passes, as `sd_listen_fds(3)` describes it: the sockets of the .socket
 * unit as open descriptors 3, 4, ... 3+N-1 (`SD_LISTEN_FDS_START` is 3), and three
 * environment variables. `LISTEN_FDS=N` says how many. `LISTEN_PID` is the pid they
 * are meant for: the variables are inherited by every child, so a process whose pid is
 * not `LISTEN_PID` must ignore them (its parent was the one activated).
 * `LISTEN_FDNAMES` is N colon-separated names, one per descriptor, from
 * `FileDescriptorName=` of the .socket unit (by default the unit's name).
 *
 * Why: systemd binds the addresses, so the proxy needs no privilege for ports below
 * 1024, and the listening socket outlives the process. While the proxy restarts, the
 * kernel keeps queueing new clients in the socket's backlog and the next process
 * accepts them: nobody is refused.
 *
 * Matching: a descriptor whose name equals a listener's name goes to that listener;
 * the others go to the remaining listeners in order (the i-th left-over descriptor to
 * the i-th left-over listener). Every listener must get exactly one descriptor.
 * Like `sd_listen_fds(unset_environment=1)`, the variables are removed from
 * `process.env` once read, so no child process (a worker) reads them again.
 */
import { fstatSync } from 'node:fs';
import { ProxyError } from './errors.js';

/** LISTEN_FDS_START is the first passed descriptor (`SD_LISTEN_FDS_START`). */
export const LISTEN_FDS_START = 3;

/**
 * WORKER_FDS_ENV carries the primary's matching to the workers of `--workers N`, as
 * JSON `[[name, fd], ...]` (an environment value cannot hold every character). A
 * worker's `listen({ fd })` is done by the primary (node:cluster's round-robin
 * handle), so the numbers are the primary's descriptors.
 */
export const WORKER_FDS_ENV = 'L4PROXY_WORKER_LISTEN_FDS';

/** PassedFd is one descriptor systemd passed: its number and its name ('' if unnamed). */
export interface PassedFd {
  readonly fd: number;
  readonly name: string;
}

/**
 * Passed is what the environment said: `none` (no LISTEN_FDS), `ignored` (meant for
 * another process; `reason` says why) or the descriptors.
 */
export type Passed =
  | { readonly kind: 'none' }
  | { readonly kind: 'ignored'; readonly reason: string }
  | { readonly kind: 'fds'; readonly fds: readonly PassedFd[] };

function activationError(what: string): ProxyError {
  return new ProxyError('PROXY_ERR_INVALID_CONFIG', `socket activation: ${what}`);
}

/**
 * takeListenFds reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from `env` and
 * deletes them from it, whatever they said. Throws PROXY_ERR_INVALID_CONFIG for a
 * malformed value meant for this process (`pid`).
 */
export function takeListenFds(env: NodeJS.ProcessEnv, pid: number): Passed {
  const listenPid = env['LISTEN_PID'];
  const listenFds = env['LISTEN_FDS'];
  const names = env['LISTEN_FDNAMES'];
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDS'];
  delete env['LISTEN_FDNAMES'];
  if (listenFds === undefined) return { kind: 'none' };
  if (listenPid === undefined) return { kind: 'ignored', reason: 'LISTEN_PID is not set' };
  if (!/^[1-9][0-9]*$/.test(listenPid))
    throw activationError(`LISTEN_PID: expected a process id, got ${JSON.stringify(listenPid)}`);
  if (Number(listenPid) !== pid)
    return { kind: 'ignored', reason: `LISTEN_PID is ${listenPid}, not this process (${pid})` };
  if (!/^[0-9]+$/.test(listenFds))
    throw activationError(`LISTEN_FDS: expected a whole number, got ${JSON.stringify(listenFds)}`);
  const count = Number(listenFds);
  if (count === 0) return { kind: 'none' };
  const nameList = names === undefined ? [] : names.split(':');
  if (names !== undefined && nameList.length !== count)
    throw activationError(
      `LISTEN_FDNAMES has ${nameList.length} name(s) for LISTEN_FDS=${count}: ${JSON.stringify(names)}`,
    );
  const fds = Array.from({ length: count }, (_, i) => ({
    fd: LISTEN_FDS_START + i,
    name: nameList[i] ?? '',
  }));
  return { kind: 'fds', fds };
}

/** describeFd names a descriptor in messages: `fd 4 (named "db")`. */
export function describeFd(passed: PassedFd): string {
  return passed.name === ''
    ? `fd ${passed.fd}`
    : `fd ${passed.fd} (named ${JSON.stringify(passed.name)})`;
}

/**
 * assignListenFds matches descriptors to listeners (by name, then in order; see the
 * module comment) and returns listener name → descriptor. Throws
 * PROXY_ERR_INVALID_CONFIG naming the descriptor or listener left without a partner.
 */
export function assignListenFds(
  fds: readonly PassedFd[],
  listenerNames: readonly string[],
): Map<string, number> {
  const assigned = new Map<string, number>();
  const byName = new Map<string, PassedFd>();
  const leftFds: PassedFd[] = [];
  for (const passed of fds) {
    if (!listenerNames.includes(passed.name)) {
      leftFds.push(passed);
      continue;
    }
    const first = byName.get(passed.name);
    if (first !== undefined)
      throw activationError(
        `fd ${first.fd} and fd ${passed.fd} are both named ${JSON.stringify(passed.name)}, but listener ` +
          `${passed.name} takes one socket; give each address its own FileDescriptorName=`,
      );
    byName.set(passed.name, passed);
    assigned.set(passed.name, passed.fd);
  }
  const leftListeners = listenerNames.filter((name) => !assigned.has(name));
  const total = `LISTEN_FDS=${fds.length} for ${listenerNames.length} listener(s)`;
  if (leftFds.length > leftListeners.length) {
    const unused = leftFds.slice(leftListeners.length).map(describeFd).join(', ');
    throw activationError(
      `${unused} has no listener (${total}); remove its socket or add a listener`,
    );
  }
  if (leftListeners.length > leftFds.length) {
    const without = leftListeners.slice(leftFds.length).join(', ');
    throw activationError(
      `listener ${without} has no socket (${total}); add a ListenStream= with FileDescriptorName=${leftListeners[leftFds.length]}`,
    );
  }
  leftListeners.forEach((name, i) => {
    assigned.set(name, (leftFds[i] as PassedFd).fd);
  });
  return assigned;
}

/**
 * checkSocketFd throws PROXY_ERR_INVALID_CONFIG unless `passed` is an open socket.
 * Whether it is a listening stream socket Node cannot ask (no SO_ACCEPTCONN); a
 * datagram socket or a connected one fails in listen() instead, with EINVAL.
 */
export function checkSocketFd(passed: PassedFd): void {
  let isSocket: boolean;
  try {
    isSocket = fstatSync(passed.fd).isSocket();
  } catch (err) {
    throw activationError(`${describeFd(passed)} is not open: ${(err as Error).message}`);
  }
  if (!isSocket) throw activationError(`${describeFd(passed)} is not a socket`);
}

/** encodeWorkerFds writes the matching for WORKER_FDS_ENV. */
export function encodeWorkerFds(assigned: ReadonlyMap<string, number>): string {
  return JSON.stringify([...assigned]);
}

/** takeWorkerFds reads (and deletes) WORKER_FDS_ENV in a worker; undefined if not set. */
export function takeWorkerFds(env: NodeJS.ProcessEnv): Map<string, number> | undefined {
  const text = env[WORKER_FDS_ENV];
  delete env[WORKER_FDS_ENV];
  if (text === undefined) return undefined;
  // Written by our own primary (encodeWorkerFds), so trusted.
  return new Map(JSON.parse(text) as [string, number][]);
}

/**
 * listenFdsFromEnv is the whole of it for the CLI: take the variables from `env`
 * (takeListenFds), match the descriptors to `listenerNames` (assignListenFds) and
 * check that each is a socket (checkSocketFd). Returns undefined when nothing was
 * passed to this process; `onIgnored` hears why variables meant for another were
 * ignored. Throws PROXY_ERR_INVALID_CONFIG with a one-line message.
 */
export function listenFdsFromEnv(
  env: NodeJS.ProcessEnv,
  pid: number,
  listenerNames: readonly string[],
  onIgnored: (reason: string) => void,
): Map<string, number> | undefined {
  const passed = takeListenFds(env, pid);
  if (passed.kind === 'ignored') onIgnored(passed.reason);
  if (passed.kind !== 'fds') return undefined;
  const assigned = assignListenFds(passed.fds, listenerNames);
  for (const fd of passed.fds) checkSocketFd(fd);
  return assigned;
}
