/**
 * The relay: copying bytes from one endpoint's socket to the other's, unchanged.
 *
 * These are the socket listeners of a connection that is up. They are plain named
 * functions, shared by every connection (each finds its endpoint via `kEndpoint`),
 * so a chunk costs no allocation of ours.
 *
 * Backpressure: when `write()` returns false the peer's send buffer is full, so we
 * stop reading the source (`pause()`); the peer's 'drain' resumes it. Each direction
 * then holds at most one socket highWaterMark on the read side plus one on the write
 * side, and one chunk each (see docs/design.md, "Memory per connection").
 *
 * Half-close: a FIN from one side ('end') becomes `end()` on the other, which Node
 * sends only after everything already written has been handed to the kernel.
 */
import { type Endpoint, type EndpointSocket, kEndpoint } from './endpoint.js';

/** startRelay hooks the relay listeners to one endpoint's socket. */
export function startRelay(socket: EndpointSocket): void {
  socket.on('data', socketOnData);
  socket.on('drain', socketOnDrain);
  socket.on('end', socketOnEnd);
}

/** watchSocket hooks the listeners every owned socket needs from the start: errors and close. */
export function watchSocket(socket: EndpointSocket): void {
  socket.on('error', socketOnError);
  socket.on('close', socketOnClose);
}

// Design case "read() returns > 0": pass the bytes on to the peer.
function socketOnData(this: EndpointSocket, chunk: Buffer): void {
  const from = this[kEndpoint];
  const context = from.context;
  from.bytesRead += chunk.length;
  context.lastActivityMs = context.now();
  const to = from.peer.socket;
  if (to === null) return; // cannot happen: a socket is read only once both are up
  const flushed = to.write(chunk);
  if (context.trace) traceChunk(from, chunk.length, to.writableLength);
  if (!flushed) {
    from.paused = true;
    this.pause();
    if (context.trace) {
      context.traceEvent(
        from.side,
        `paused reading ${from.side}: ${from.peer.side} cannot take more`,
      );
    }
  }
}

// The peer's send buffer has room again: resume reading the side that feeds it.
function socketOnDrain(this: EndpointSocket): void {
  const source = this[kEndpoint].peer;
  if (!source.paused || source.socket === null) return;
  source.paused = false;
  source.socket.resume();
  if (source.context.trace) {
    source.context.traceEvent(
      source.side,
      `resumed reading ${source.side}: ${source.peer.side} drained`,
    );
  }
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
  if (!from.context.closed) from.context.onSocketClose(from);
}
