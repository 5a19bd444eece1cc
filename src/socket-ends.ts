/**
 * What a proxy context needs to know of, and do to, its sockets beyond relaying: the
 * client's address as logs print it, how many written bytes the kernel took, and a
 * teardown that never throws. Some of it reads Node's own socket internals; it is
 * kept here, apart from the life of a connection (proxy-context.ts).
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatAddress } from './config/address.js';
import type { ListenerConfig } from './config/config.js';

/** PeerName is a socket's peer as the kernel gives it (getpeername); empty when it cannot. */
export interface PeerName {
  address?: string;
  port?: number;
}

interface PeerHandle {
  getpeername?(out: PeerScratch): number;
}

interface PeerScratch {
  address: string;
  family: string;
  port: number;
}

// What the handle fills in: one object for every call, its properties there from the
// start. Node's C++ sets `address`, `family` and `port` on the object it is given; on a
// new empty object each is a hidden-class transition, in V8's runtime, every time.
const scratch: PeerScratch = { address: '', family: '', port: 0 };

/**
 * peerName asks the kernel for the peer of a TCP socket (getpeername) through the socket's
 * handle, as Node's `remoteAddress` does, but without its two costs per socket: Node
 * keeps the answer in a property it adds to the socket (`_peername`: one hidden class
 * more for every socket Node's code sees), and has the address written into a new empty
 * object (a hidden-class transition per property, in V8's runtime). Without the handle's
 * method (not Node's API) it falls back to `remoteAddress`.
 */
export function peerName(socket: Socket): PeerName {
  const handle = (socket as unknown as { _handle?: PeerHandle | null })._handle;
  if (handle === undefined || handle === null || typeof handle.getpeername !== 'function')
    return { address: socket.remoteAddress, port: socket.remotePort };
  if (handle.getpeername(scratch) !== 0) return {};
  return { address: scratch.address, port: scratch.port };
}

/**
 * describeClient is the client's address as logs print it, from its `peer` (peerName):
 * `host:port`; `unix` for a client of a Unix domain socket listener, which has no address
 * of its own; `unknown` for a TCP client that reset before we asked for its address
 * (getpeername fails with ENOTCONN once the connection is gone).
 */
export function describeClient(peer: PeerName, config: ListenerConfig): string {
  if (config.listen.path !== undefined) return 'unix';
  const address = peer.address;
  return address === undefined ? 'unknown' : formatAddress(address, peer.port ?? 0);
}

/**
 * The parts of a socket's libuv handle that say how far its writes got. `_handle` is
 * Node's own property (no public API gives the kernel's share of a pending write).
 */
interface WriteCounters {
  /** bytesWritten: every byte handed to libuv, whether or not the kernel took it yet. */
  readonly bytesWritten?: unknown;
  /** writeQueueSize: bytes libuv still holds because the kernel would not take them yet. */
  readonly writeQueueSize?: unknown;
}

/**
 * SocketEnd is one end of a connection as teardown sees it: the socket the context
 * reads and writes (a wrapper, such as a TLS socket, or the TCP socket itself) and the
 * TCP or Unix socket under it (Endpoint).
 */
export interface SocketEnd {
  readonly socket: Duplex | null;
  readonly transport: Socket | null;
}

/**
 * deliveredBytes is how many bytes of what we wrote to `end`'s socket its kernel
 * accepted: the bytes handed to libuv minus those libuv still queues. Once the handle
 * is gone (the socket closed), Node's own count of completed writes (`bytesWritten`
 * minus `writableLength`, the bytes still in its write buffer) is what is left; a write
 * still pending then was cut short and counts only in the first form, which close()
 * takes before it destroys the sockets. For a TLS socket both count the plaintext
 * written to it (its handle is the TLS layer), taken by the TLS layer rather than the
 * kernel. A Duplex that is no socket counts what it was given and took (bytesWritten,
 * if it keeps one, else nothing).
 */
export function deliveredBytes(end: SocketEnd): number {
  const socket = end.socket;
  if (socket === null) return 0;
  const handle = (socket as unknown as { _handle?: WriteCounters | null })._handle ?? null;
  if (
    handle !== null &&
    typeof handle.bytesWritten === 'number' &&
    typeof handle.writeQueueSize === 'number'
  ) {
    return handle.bytesWritten - handle.writeQueueSize;
  }
  const written = (socket as { bytesWritten?: unknown }).bytesWritten;
  return Math.max(0, (typeof written === 'number' ? written : 0) - socket.writableLength);
}

/**
 * destroyEnd closes both sockets of `end` now (see destroySocket): a reset goes to the
 * TCP socket (under a TLS socket too, so its peer sees the RST), then the socket the
 * context used is destroyed. It never throws.
 */
export function destroyEnd(end: SocketEnd, reset: boolean): void {
  destroySocket(end.transport, reset);
  if (end.socket !== end.transport) destroySocket(end.socket, false);
}

/**
 * destroySocket closes `socket` now, with a reset (RST) when `reset` is true and the
 * platform allows it, else with a plain close (FIN). It never throws: a throw here
 * would escape a socket's 'error' listener and end the process, or leave the context
 * half-closed. It is called only with `reset` false for a Unix domain socket, which
 * has no RST (`resetAndDestroy` throws ERR_INVALID_HANDLE_TYPE on a pipe).
 */
export function destroySocket(socket: Duplex | null, reset: boolean): void {
  if (socket === null || socket.destroyed) return;
  try {
    // resetAndDestroy on a socket still connecting would wait for the connect; just drop it.
    if (reset && socket instanceof Socket && !socket.connecting && !shutdownPending(socket))
      socket.resetAndDestroy();
    else socket.destroy();
  } catch {
    // Node checks the handle before it changes anything, so a refused reset leaves the
    // socket as it was: close it plainly instead.
    try {
      socket.destroy();
    } catch {
      // Nothing more can be done for this socket; the teardown goes on.
    }
  }
}

/**
 * shutdownPending: we sent our FIN with `end()`, Node has nothing left to write and
 * asked libuv to shut the write side down, and the shutdown has not finished yet
 * ('finish'). It stays pending until the kernel has room for the FIN, which a peer
 * that does not read may never make. A reset is not possible then: libuv refuses
 * (uv_tcp_close_reset returns UV_EINVAL while a shutdown request is pending), and
 * Node, when asked anyway (`resetAndDestroy`), reports EINVAL and never closes the
 * handle (TCPWrap::Reset marks it closing without closing it; seen on Node 20, 24
 * and 26), so the descriptor and the endpoint's read buffer would leak and 'close'
 * never come.
 * Such a socket is closed plainly: the peer gets the bytes already queued and then
 * the FIN it was promised by `end()`, not a reset.
 */
function shutdownPending(socket: Socket): boolean {
  return socket.writableEnded && !socket.writableFinished && socket.writableLength === 0;
}
