/**
 * Endpoint: the per-descriptor structure of the design. A proxy context has two,
 * the client's (the design's "source") and the upstream's (the "destination").
 * Each holds the state of ONE socket that is of no interest to the context as a
 * whole (is reading paused, has a FIN arrived, has our FIN been sent) and points
 * back at the context that owns it.
 *
 * The socket points at its endpoint through the `kEndpoint` property, so the
 * socket listeners can be plain named functions shared by every connection
 * (`this[kEndpoint]`) instead of closures made per connection or per chunk. Only the
 * two callbacks Node calls without `this` (choosing the next read buffer, a write from
 * a large buffer being done) are closures, made the first time the endpoint reads in
 * bulk; an idle or request/response connection never has them.
 */
import type { Socket } from 'node:net';
import {
  borrowLarge,
  chooseBuffersWith,
  giveBackLarge,
  SHARED_READ_BUFFER,
  SMALL_BYTES,
} from './read-buffer.js';

/** Side names the two ends of a proxied connection, as logs and causes spell them. */
export type Side = 'client' | 'upstream';

/** kEndpoint is the property by which a socket finds its Endpoint. */
export const kEndpoint: unique symbol = Symbol('proxy.endpoint');

/** EndpointSocket is a socket that belongs to a proxy context. */
export interface EndpointSocket extends Socket {
  [kEndpoint]: Endpoint;
}

/**
 * EndpointOwner is what an endpoint needs from its proxy context. The context
 * implements it; keeping it an interface keeps this module free of the context's code.
 */
export interface EndpointOwner {
  readonly closed: boolean;
  /** trace is true when every event of this connection is logged. */
  readonly trace: boolean;
  /** lastActivityMs is when bytes last moved either way; the idle timer reads it. */
  lastActivityMs: number;
  /**
   * watchesActivity: an idle or half-close timeout applies, so every read records the
   * time in `lastActivityMs`. Without either (the default), a read costs no clock read.
   */
  readonly watchesActivity: boolean;
  now(): number;
  traceEvent(side: Side, event: string, fields?: Readonly<Record<string, number | string>>): void;
  /**
   * holdEarly keeps a chunk the client sent before its upstream was connected (relay.ts);
   * false: hold no more for now, stop reading (resumed with resumeIfWritten).
   */
  holdEarly(chunk: Buffer): boolean;
  onFin(from: Endpoint): void;
  onSocketError(from: Endpoint, err: Error): void;
  onSocketClose(from: Endpoint): void;
  /** onDialConnected: the connect attempt of this (upstream) endpoint's socket succeeded (dial.ts). */
  onDialConnected(socket: Socket): void;
  /** onDialFailed: that attempt failed; `socket` is to be abandoned. */
  onDialFailed(socket: Socket, err: Error): void;
}

/** Endpoint is one socket's state inside a proxy context. The context owns it. */
export class Endpoint {
  readonly side: Side;
  readonly context: EndpointOwner;
  /** peer is the other endpoint of the same context: where this one's bytes go. */
  peer!: Endpoint;
  /** socket is null for the upstream until a connect attempt starts. */
  socket: EndpointSocket | null = null;
  /**
   * paused: we stopped reading this socket because part of its last chunk still waits
   * for the peer (backpressure). If that chunk sits in a large buffer lent to this
   * endpoint, the buffer is not touched until the write is done.
   */
  paused = false;
  /** finReceived: this side finished sending (its FIN arrived; the design's read() returning 0). */
  finReceived = false;
  /** writeShut: we sent our FIN to this side (`socket.end()`), after all buffered bytes. */
  writeShut = false;
  /** socketClosed: the socket emitted 'close'. */
  socketClosed = false;
  /** bytesRead counts bytes read from this side, i.e. relayed to the peer. */
  bytesRead = 0;
  /** lastReadBytes is the size of the last read; it decides the next read buffer. */
  lastReadBytes = 0;
  /** readBuffer is where the next read lands: the shared one, or a large one lent by the pool. */
  readBuffer: Buffer = SHARED_READ_BUFFER;
  /**
   * onPeerWritten is the callback of writes from a large buffer. Like the buffer chooser
   * Node calls after each read, it is made once, the first time this endpoint reads in
   * bulk: an endpoint that only ever sees small reads (and an idle one) has neither.
   */
  onPeerWritten: (() => void) | null = null;

  constructor(side: Side, context: EndpointOwner) {
    this.side = side;
    this.context = context;
  }

  /** readInBulk asks for a large buffer from the next read of `socket` on (it filled the shared one). */
  readInBulk(socket: Socket): void {
    if (this.onPeerWritten === null) {
      this.onPeerWritten = () => this.resumeIfWritten();
      chooseBuffersWith(socket, () => this.#chooseReadBuffer());
    }
  }

  // Called by Node after each read of this socket: a read that filled the shared buffer
  // asks for a large one; a read that would have fit the shared one gives it back.
  #chooseReadBuffer(): Buffer {
    const current = this.readBuffer;
    if (current === SHARED_READ_BUFFER) {
      if (this.lastReadBytes === SMALL_BYTES) this.readBuffer = borrowLarge() ?? current;
    } else if (!this.paused && this.lastReadBytes <= SMALL_BYTES) {
      // (While paused, a pending write still points into the large buffer: keep it.)
      giveBackLarge(current);
      this.readBuffer = SHARED_READ_BUFFER;
    }
    return this.readBuffer;
  }

  /** resumeIfWritten: the peer took what we waited for (all of it), so read again. */
  resumeIfWritten(): void {
    const to = this.peer.socket;
    if (!this.paused || this.socket === null || (to !== null && to.writableLength > 0)) return;
    this.paused = false;
    this.socket.resume();
    if (this.context.trace) {
      this.context.traceEvent(
        this.side,
        `resumed reading ${this.side}: ${this.peer.side} took the chunk`,
      );
    }
  }

  /** releaseReadBuffer gives a lent large buffer back once the socket is closed. */
  releaseReadBuffer(): void {
    if (this.readBuffer === SHARED_READ_BUFFER) return;
    giveBackLarge(this.readBuffer);
    this.readBuffer = SHARED_READ_BUFFER;
  }

  /**
   * mark points `socket` at this endpoint (`kEndpoint`), without making it the
   * endpoint's socket yet: dial() marks a socket it is still connecting. Every socket
   * of ours gets this one property, first thing after Node made it, and no other: each
   * property added to a socket gives it a new hidden class in V8, and Node's own socket
   * code, which runs for every socket, slows down once it sees more than a few.
   */
  mark(socket: Socket): EndpointSocket {
    const marked = socket as EndpointSocket;
    marked[kEndpoint] = this;
    return marked;
  }

  /** attach makes `socket` this endpoint's socket. */
  attach(socket: Socket): EndpointSocket {
    const owned = this.mark(socket);
    this.socket = owned;
    return owned;
  }

  /** buffered is the number of bytes held in user space for this socket, both ways. */
  get buffered(): number {
    const socket = this.socket;
    return socket === null ? 0 : socket.writableLength + socket.readableLength;
  }
}
