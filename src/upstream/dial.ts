/**
 * Dialing one target: the design's non-blocking connect().
 *
 * `net.connect` starts the connect (the design's EINPROGRESS); libuv waits for the
 * socket to become writable and reads SO_ERROR for us, and Node reports the result
 * as 'connect' or as an 'error' carrying the errno code (ECONNREFUSED, EHOSTUNREACH,
 * ...). The connect timeout is not Node's: the proxy context keeps it in the timer
 * set, and abandons the attempt with `abandonDial` when it fires.
 *
 * Two ways in, one socket: `dial` is the proxy context's (callbacks through the
 * endpoint, no promise or closure per attempt), `connectTo` is for anyone else (a
 * health probe): a promise of a connected socket, or a `DialError` saying which of
 * the design's connect cases happened. Both open the socket with `openSocket`.
 */
import { connect, type Socket } from 'node:net';
import type { Target } from '../config/config.js';
import { type Endpoint, type EndpointSocket, kEndpoint } from '../endpoint.js';
import { errorCode } from '../errors.js';
import { cachedLookup } from './resolve.js';

/** OnreadOptions tell Node where the socket's reads land and whom to call (see read-buffer.ts). */
export interface OnreadOptions {
  buffer: Uint8Array | (() => Uint8Array);
  callback: (bytes: number, buffer: Uint8Array) => boolean;
}

/**
 * dial starts connecting to `target` (TCP, or a Unix domain socket) and returns the
 * socket at once. The socket is half-open capable (`allowHalfOpen`) and, for TCP, has
 * Nagle off (`noDelay`): a proxy should not add latency that the peers did not ask for.
 * A host name is looked up through the shared cache (resolve.ts). The socket is
 * marked as `endpoint`'s at once, and its owner (`endpoint.context`) hears how the
 * attempt ended: `onDialConnected` or `onDialFailed` is called, once, unless the owner
 * gave up first (connect timeout). The owner becomes responsible for the socket when
 * `onDialConnected` is called; on failure or when it gives up it must call abandonDial.
 */
export function dial(target: Target, endpoint: Endpoint, onread: OnreadOptions): Socket {
  const socket = openSocket(target, onread);
  endpoint.mark(socket);
  // 'on', not 'once', for both: the owner removes them (finishDial/abandonDial). For
  // 'error', until then a second error must not find the socket without a listener;
  // for 'connect' (emitted once anyway), 'once' would wrap it in a closure per attempt.
  socket.on('connect', upstreamOnConnect);
  socket.on('error', upstreamOnConnectError);
  return socket;
}

/** DialAddress is where to connect: TCP `host` and `port`, or a Unix socket `path` (a Target is one). */
export type DialAddress =
  | { readonly host: string; readonly port: number; readonly path?: undefined }
  | { readonly path: string; readonly host?: undefined; readonly port?: undefined };

/**
 * openSocket starts connecting to `address` and returns the socket at once (the
 * design's EINPROGRESS). The caller must listen for 'connect' and 'error'.
 */
export function openSocket(address: DialAddress, onread?: OnreadOptions): Socket {
  if (address.path !== undefined)
    return connect({ path: address.path, allowHalfOpen: true, onread });
  return connect({
    host: address.host,
    port: address.port,
    allowHalfOpen: true,
    noDelay: true,
    onread,
    lookup: cachedLookup, // a host name is resolved once, not per connection
  });
}

/**
 * DialCase is which of the design's connect cases (docs/design.md §8) ended an
 * attempt: `refused` (ECONNREFUSED: nothing listens, the peer sent RST),
 * `unreachable` (EHOSTUNREACH, ENETUNREACH: no route, an ICMP error), `timeout` (no
 * answer within the connect timeout: SYNs dropped), `resolve` (ENOTFOUND, EAI_AGAIN:
 * the host name did not resolve), `descriptors` (EMFILE, ENFILE: out of file
 * descriptors, our problem, not the target's), `aborted` (the caller gave up), or
 * `other` (any other errno, passed through in `code`).
 */
export type DialCase =
  | 'refused'
  | 'unreachable'
  | 'timeout'
  | 'resolve'
  | 'descriptors'
  | 'aborted'
  | 'other';

/** DialError is a failed `connectTo`: `code` is the errno code (or ETIMEDOUT, ABORT_ERR), `dialCase` its case. */
export class DialError extends Error {
  readonly code: string;
  readonly dialCase: DialCase;
  constructor(address: string, code: string) {
    super(`connect ${address}: ${code}`);
    this.name = 'DialError';
    this.code = code;
    this.dialCase = dialCaseOf(code);
  }
}

/** dialCaseOf classifies an errno code into the design's connect cases (see DialCase). */
export function dialCaseOf(code: string): DialCase {
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'unreachable';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'resolve';
    case 'EMFILE':
    case 'ENFILE':
      return 'descriptors';
    case 'ABORT_ERR':
      return 'aborted';
    default:
      return 'other';
  }
}

/** ConnectOptions: `timeoutMs` (0: no timeout of ours, the kernel's applies) and an optional `signal`. */
export interface ConnectOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * connectTo connects to `address` and resolves with the connected socket, which
 * the caller then owns (and must destroy). It rejects with a DialError when the
 * connect fails, takes longer than `timeoutMs` (code ETIMEDOUT), or `signal` aborts
 * (code ABORT_ERR); the socket is destroyed then, and nothing of the attempt is left.
 */
export function connectTo(address: DialAddress, options: ConnectOptions): Promise<Socket> {
  const name =
    address.path !== undefined ? `unix:${address.path}` : `${address.host}:${address.port}`;
  const { signal, timeoutMs } = options;
  if (signal?.aborted === true) return Promise.reject(new DialError(name, 'ABORT_ERR'));
  return new Promise((resolve, reject) => {
    const socket = openSocket(address);
    let timer: NodeJS.Timeout | undefined;
    const settle = (code: string | null): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeListener('connect', onConnect);
      socket.removeListener('error', onError);
      if (code === null) {
        resolve(socket);
        return;
      }
      socket.on('error', ignoreLateError);
      socket.destroy();
      reject(new DialError(name, code));
    };
    const onConnect = (): void => settle(null);
    const onError = (err: Error): void => settle(errorCode(err));
    // Design case "connect() never answers" (SYNs dropped): our timeout, not the kernel's.
    const onTimeout = (): void => settle('ETIMEDOUT');
    const onAbort = (): void => settle('ABORT_ERR');
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs > 0) timer = setTimeout(onTimeout, timeoutMs);
  });
}

/** finishDial removes the dial listeners from a connected socket; its new owner watches it now. */
export function finishDial(socket: Socket): void {
  socket.removeListener('connect', upstreamOnConnect);
  socket.removeListener('error', upstreamOnConnectError);
}

/** abandonDial drops an attempt that failed or timed out; a late error from it is ignored. */
export function abandonDial(socket: Socket): void {
  finishDial(socket);
  socket.on('error', ignoreLateError);
  socket.destroy();
}

function upstreamOnConnect(this: Socket & EndpointSocket): void {
  this[kEndpoint].context.onDialConnected(this);
}

// Design case "connect() fails" (after EINPROGRESS, SO_ERROR was set): the owner
// counts it and moves on to the next target.
function upstreamOnConnectError(this: Socket & EndpointSocket, err: Error): void {
  this[kEndpoint].context.onDialFailed(this, err);
}

function ignoreLateError(): void {}
