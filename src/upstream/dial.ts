/**
 * Dialing one target: the design's non-blocking connect().
 *
 * `net.connect` starts the connect (the design's EINPROGRESS); libuv waits for the
 * socket to become writable and reads SO_ERROR for us, and Node reports the result
 * as 'connect' or as an 'error' carrying the errno code (ECONNREFUSED, EHOSTUNREACH,
 * ...). The connect timeout is not Node's: the proxy context keeps it in the timer
 * set, and abandons the attempt with `abandonDial` when it fires.
 */
import { connect, type Socket } from 'node:net';
import type { Target } from '../config/config.js';
import { type Endpoint, type EndpointSocket, kEndpoint } from '../endpoint.js';
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
  const socket =
    target.path !== undefined
      ? connect({ path: target.path, allowHalfOpen: true, onread })
      : connect({
          host: target.host,
          port: target.port,
          allowHalfOpen: true,
          noDelay: true,
          onread,
          lookup: cachedLookup, // a host name is resolved once, not per connection
        });
  endpoint.mark(socket);
  socket.once('connect', upstreamOnConnect);
  // 'on', not 'once': the owner removes it (finishDial/abandonDial), and until then a
  // second error must not find the socket without an 'error' listener.
  socket.on('error', upstreamOnConnectError);
  return socket;
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

function upstreamOnConnect(this: EndpointSocket): void {
  this[kEndpoint].context.onDialConnected(this);
}

// Design case "connect() fails" (after EINPROGRESS, SO_ERROR was set): the owner
// counts it and moves on to the next target.
function upstreamOnConnectError(this: EndpointSocket, err: Error): void {
  this[kEndpoint].context.onDialFailed(this, err);
}

function ignoreLateError(): void {}
