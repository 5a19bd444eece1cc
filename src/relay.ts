/**
 * The relay: copying bytes from one endpoint's socket to the other's, unchanged.
 *
 * These are the socket callbacks of a connection that is up. They are plain named
 * functions, shared by every connection (each finds its endpoint via `kEndpoint`),
 * so a chunk costs no closure: libuv reads into the endpoint's read buffer
 * (read-buffer.ts) and calls `socketOnRead` with the byte count. A small read is
 * copied out of the shared buffer; a bulk read in a large buffer is written as it is.
 *
 * Backpressure: after writing a chunk to the peer, if the peer's kernel did not take
 * all of it (`writableLength > 0`), part of the chunk waits in Node (pointing into our
 * large buffer, or being the copy). So we stop reading this side (return false) until
 * that write is done (Endpoint.onPeerWritten), which both protects a large buffer and
 * bounds memory: per direction, at most one chunk waits in user space (docs/design.md).
 *
 * Half-close: a FIN from one side ('end') becomes `end()` on the other, which Node
 * sends only after everything already written has been handed to the kernel.
 */
import { type Endpoint, type EndpointSocket, kEndpoint } from './endpoint.js';
import { readsIntoOwnBuffer, SHARED_READ_BUFFER } from './read-buffer.js';

/** startClientRelay starts reading an accepted client socket (paused until now) into its endpoint's buffers. */
export function startClientRelay(socket: EndpointSocket): void {
  const endpoint = socket[kEndpoint];
  readsIntoOwnBuffer(socket, endpoint.readBuffer, endpoint.nextReadBuffer, socketOnRead);
  socket.on('end', socketOnEnd);
  socket.resume(); // pauseOnConnect left it paused
}

/** startUpstreamRelay hooks the relay to a connected upstream socket (dialed with `upstreamOnread`). */
export function startUpstreamRelay(socket: EndpointSocket): void {
  socket.on('end', socketOnEnd);
}

/** upstreamOnread is the `onread` option for dialing the upstream of `endpoint`. */
export function upstreamOnread(endpoint: Endpoint) {
  return { buffer: endpoint.nextReadBuffer, callback: socketOnRead };
}

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
  context.lastActivityMs = context.now();
  const to = from.peer.socket;
  if (to === null || to.destroyed) return false; // torn down meanwhile; the close path finishes
  // Bytes in the shared buffer are copied (the next read of any socket overwrites it);
  // a large buffer belongs to this endpoint and is written as it is.
  const chunk =
    buffer === SHARED_READ_BUFFER
      ? Buffer.from(buffer.subarray(0, bytes))
      : bytes === buffer.length
        ? buffer
        : buffer.subarray(0, bytes);
  to.write(chunk, from.onPeerWritten);
  const waiting = to.writableLength;
  if (context.trace) traceChunk(from, bytes, waiting);
  if (waiting === 0) return true; // the kernel took it all: the buffer is free again
  from.paused = true;
  if (context.trace) {
    context.traceEvent(
      from.side,
      `paused reading ${from.side}: ${from.peer.side} cannot take more`,
    );
  }
  return false;
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
