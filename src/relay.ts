/**
 * The relay: copying bytes from one endpoint's socket to the other's, unchanged.
 *
 * These are the socket callbacks of a connection that is up. They are plain named
 * functions, shared by every connection (each finds its endpoint via `kEndpoint`),
 * so a chunk costs no closure: libuv reads into the endpoint's read buffer
 * (read-buffer.ts) and calls `socketOnRead` with the byte count. A small read is
 * copied out of the shared buffer; a bulk read in a large buffer is written as it is.
 *
 * Backpressure, two ways (docs/design.md §6, §7). A copy of a small read is written
 * like any write: reading goes on while `write()` returns true and stops (return
 * false) once the peer holds its high-water mark, until 'drain'. A chunk in a large
 * buffer is written as it is: if the peer's kernel did not take all of it
 * (`writableLength > 0`), part of it still points into the buffer, so reading stops
 * until that write is done (Endpoint.onPeerWritten). Per direction, at most one large
 * chunk, plus copies under the high-water mark, wait in user space.
 *
 * Half-close: a FIN from one side ('end') becomes `end()` on the other, which Node
 * sends only after everything already written has been handed to the kernel.
 *
 * A stage (stage.ts) between the sockets changes the read callback, not the chunk
 * path: `followStage` gives an endpoint `socketOnStagedRead` while it has one, and
 * `socketOnRead` again when it is taken out, so a plain chunk tests for nothing.
 *
 * A socket that is not read through onread (a TLS socket, any Duplex: `readsEvents`)
 * gives its chunks as 'data' events; `socketOnData` writes them with the same
 * backpressure (pause() instead of returning false) and the same FIN and error path.
 */
import type { Socket } from 'node:net';
import { type Endpoint, type EndpointSocket, kEndpoint } from './endpoint.js';
import { readsIntoOwnBuffer, SHARED_READ_BUFFER, setReadCallback } from './read-buffer.js';

/**
 * startClientRelay starts reading an accepted client socket (paused until now), at
 * accept, before its upstream is connected: what it reads is held by its context
 * (`holdEarly`, bounded) until relayClient, and a reset or FIN is seen at once.
 */
export function startClientRelay(socket: Socket): void {
  readsIntoOwnBuffer(socket, SHARED_READ_BUFFER, socketOnEarlyRead);
  socket.on('end', socketOnEnd);
  socket.on('drain', socketOnDrain);
  socket.resume(); // pauseOnConnect left it paused
}

/**
 * startWrappedClient starts reading a client socket that replaced the accepted one (a
 * TLS socket wrapping it, from the handshake), before its upstream is connected:
 * like startClientRelay, through 'data' events.
 */
export function startWrappedClient(socket: EndpointSocket): void {
  socket.on('data', socketOnEarlyData);
  socket.on('end', socketOnEnd);
  socket.on('drain', socketOnDrain);
}

/**
 * unwatchReplaced stops handling a client socket that a wrapper replaced: the wrapper
 * reads it now (tls.TLSSocket takes its native handle over), and its errors and close
 * reach the context through the wrapper. A late error is ignored.
 */
export function unwatchReplaced(socket: EndpointSocket): void {
  socket.removeListener('end', socketOnEnd);
  socket.removeListener('drain', socketOnDrain);
  socket.removeListener('error', socketOnError);
  socket.removeListener('close', socketOnClose);
  socket.on('error', ignoreLateError);
}

/** relayClient: the upstream is connected and the held bytes written; relay the client's reads from now on. */
export function relayClient(socket: EndpointSocket): void {
  if (socket[kEndpoint].readsEvents) {
    socket.removeListener('data', socketOnEarlyData);
    socket.on('data', socketOnData);
  } else {
    followStage(socket);
  }
}

/**
 * followStage gives a relaying socket read through onread the read callback for its
 * endpoint's stage (none: the plain one). Called when a stage is put in or taken out;
 * a socket read through 'data' events looks at the stage per chunk instead.
 */
export function followStage(socket: EndpointSocket): void {
  if (socket[kEndpoint].readsEvents) return;
  setReadCallback(socket, socket[kEndpoint].stage === null ? socketOnRead : socketOnStagedRead);
}

// Before the upstream is connected: hand a copy to the context, which holds it.
function socketOnEarlyRead(this: EndpointSocket, bytes: number, buffer: Uint8Array): boolean {
  const from = this[kEndpoint];
  from.bytesRead += bytes;
  if (from.context.holdEarly(Buffer.from(buffer.subarray(0, bytes)))) return true;
  from.paused = true;
  return false;
}

// The same for a wrapped client: the chunk is a new buffer of its own, held as it is.
function socketOnEarlyData(this: EndpointSocket, chunk: Buffer): void {
  const from = this[kEndpoint];
  from.bytesRead += chunk.length;
  if (from.context.holdEarly(chunk)) return;
  from.paused = true;
  this.pause();
}

/**
 * startUpstreamRelay hooks the relay to a connected upstream socket: one dialed with
 * UPSTREAM_ONREAD already reads; a wrapper (TLS) is read through 'data' events.
 */
export function startUpstreamRelay(socket: EndpointSocket): void {
  if (socket[kEndpoint].readsEvents) socket.on('data', socketOnData);
  socket.on('end', socketOnEnd);
  socket.on('drain', socketOnDrain);
}

/** UPSTREAM_ONREAD is the `onread` option every upstream is dialed with: the same for all. */
export const UPSTREAM_ONREAD = { buffer: SHARED_READ_BUFFER, callback: socketOnRead };

/** watchSocket hooks the listeners every owned socket needs from the start: errors and close. */
export function watchSocket(socket: EndpointSocket): void {
  socket.on('error', socketOnError);
  socket.on('close', socketOnClose);
}

// Design case "read() returns > 0": pass the bytes on to the peer.
function socketOnRead(this: EndpointSocket, bytes: number, buffer: Uint8Array): boolean {
  const from = this[kEndpoint];
  const context = from.context;
  from.bytesRead += bytes;
  from.lastReadBytes = bytes;
  if (context.watchesActivity) context.lastActivityMs = context.now();
  const to = from.peer.socket;
  if (to === null || to.destroyed) return false; // torn down meanwhile; the close path finishes
  let goOn: boolean;
  if (buffer === SHARED_READ_BUFFER) {
    // Copied: the next read of any socket overwrites the shared buffer. Classic
    // backpressure: keep reading until write() says the peer holds a high-water mark.
    goOn = to.write(Buffer.from(buffer.subarray(0, bytes)));
    if (bytes === buffer.length) from.readInBulk(this); // filled it: more is coming
  } else {
    // A large buffer belongs to this endpoint and is written as it is; while any of it
    // waits for the peer (writableLength > 0), it must not be read into again.
    to.write(
      bytes === buffer.length ? buffer : buffer.subarray(0, bytes),
      from.onPeerWritten ?? undefined,
    );
    goOn = to.writableLength === 0;
  }
  if (context.trace) traceChunk(from, bytes, to.writableLength);
  if (goOn) return true;
  pauseForPeer(from);
  return false;
}

// With a stage: every chunk is handed over as a copy (the stage may hold it, and the
// read buffer is read into again), and the stage's bound decides whether to go on.
function socketOnStagedRead(this: EndpointSocket, bytes: number, buffer: Uint8Array): boolean {
  const from = this[kEndpoint];
  const context = from.context;
  from.bytesRead += bytes;
  from.lastReadBytes = bytes;
  if (context.watchesActivity) context.lastActivityMs = context.now();
  const stage = from.stage;
  if (stage === null || context.closed) return false;
  if (context.trace)
    context.traceEvent(from.side, `read ${bytes} bytes from ${from.side} (staged)`);
  if (stage.take(Buffer.from(buffer.subarray(0, bytes)))) return true;
  pauseForPeer(from);
  return false;
}

// Design case "read() returns > 0" for a socket read through 'data' events (a Duplex:
// TLS): the chunk is a new buffer, written (or staged) as it is; backpressure pauses
// the stream instead of returning false.
function socketOnData(this: EndpointSocket, chunk: Buffer): void {
  const from = this[kEndpoint];
  const context = from.context;
  from.bytesRead += chunk.length;
  if (context.watchesActivity) context.lastActivityMs = context.now();
  const stage = from.stage;
  let goOn: boolean;
  if (stage !== null) {
    goOn = stage.take(chunk);
  } else {
    const to = from.peer.socket;
    if (to === null || to.destroyed) return; // torn down meanwhile; the close path finishes
    goOn = to.write(chunk);
    if (context.trace) traceChunk(from, chunk.length, to.writableLength);
  }
  if (goOn) return;
  this.pause();
  pauseForPeer(from);
}

function pauseForPeer(from: Endpoint): void {
  from.paused = true;
  if (from.context.trace) {
    from.context.traceEvent(
      from.side,
      `paused reading ${from.side}: ${from.peer.side} cannot take more`,
    );
  }
}

// The peer's write buffer is empty again: resume the side that feeds it.
function socketOnDrain(this: EndpointSocket): void {
  this[kEndpoint].peer.resumeIfWritten();
}

function traceChunk(from: Endpoint, bytes: number, queued: number): void {
  const to = from.peer.side;
  from.context.traceEvent(from.side, `read ${bytes} bytes from ${from.side}`);
  from.context.traceEvent(to, `wrote ${bytes} bytes to ${to}`, queued > 0 ? { queued } : undefined);
}

// Design case "read() returns 0": the peer finished sending.
function socketOnEnd(this: EndpointSocket): void {
  const from = this[kEndpoint];
  from.finReceived = true;
  from.context.onFin(from);
}

// Design cases "read() fails" and "write() fails with EPIPE": fatal for the context.
function socketOnError(this: EndpointSocket, err: Error): void {
  const from = this[kEndpoint];
  // After teardown a late error has nowhere to go; this listener stays so it cannot crash us.
  if (from.context.closed) return;
  from.context.onSocketError(from, err);
}

function socketOnClose(this: EndpointSocket): void {
  const from = this[kEndpoint];
  from.socketClosed = true;
  from.releaseReadBuffer(); // the handle is closed: nothing reads into it any more
  if (!from.context.closed) from.context.onSocketClose(from);
}

function ignoreLateError(): void {}
