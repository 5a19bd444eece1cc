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
 *
 * Two kinds of socket: a TCP or Unix socket (net.Socket) is read through Node's
 * `onread` into the endpoint's read buffer; any other Duplex (a TLS socket wrapping
 * one) is read through 'data' events (`readsEvents`), and the TCP or Unix socket
 * under it is its `transport` (for resets and addresses).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  borrowLarge,
  chooseBuffersWith,
  giveBackLarge,
  SHARED_READ_BUFFER,
  SMALL_BYTES,
} from './read-buffer.js';
import { deliveredBytes } from './socket-ends.js';

/** Side names the two ends of a proxied connection, as logs and causes spell them. */
export type Side = 'client' | 'upstream';

/** kEndpoint is the property by which a socket finds its Endpoint. */
export const kEndpoint: unique symbol = Symbol('proxy.endpoint');

/**
 * EndpointSocket is a socket that belongs to a proxy context: a net.Socket, or any
 * Duplex standing for one (a tls.TLSSocket wrapping it).
 */
export interface EndpointSocket extends Duplex {
  [kEndpoint]: Endpoint;
}

/**
 * EndpointStage is what an endpoint and the relay know of the stage its bytes pass
 * through on their way to the peer (stage.ts, StagePort): null on a plain connection.
 */
export interface EndpointStage {
  /** held: bytes the stage holds now (part of `buffered`). */
  readonly held: number;
  /** take hands a chunk read from this endpoint (owned: a copy) to the stage; false: stop reading. */
  take(chunk: Buffer): boolean;
  /** takeEnd hands this endpoint's FIN to the stage. */
  takeEnd(): void;
  /** mayRead: the stage and the peer socket hold little enough for reading to go on. */
  mayRead(): boolean;
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
   * transport is the TCP or Unix socket the bytes travel on: `socket` itself, or the
   * socket a wrapper (TLS) stands on. Its addresses are the connection's; a reset
   * resets it.
   */
  transport: Socket | null = null;
  /** readsEvents: `socket` is read through 'data' events (a Duplex), not `onread`. */
  readsEvents = false;
  /** stage: what this endpoint's bytes pass through before the peer socket; null: nothing. */
  stage: EndpointStage | null = null;
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
  /**
   * #settled: the bytes the socket's kernel accepted, read just before close() destroyed
   * the sockets (afterwards Node no longer knows how much of a pending write the kernel
   * took); -1 while open.
   */
  #settled = -1;

  constructor(side: Side, context: EndpointOwner) {
    this.side = side;
    this.context = context;
  }

  /** readInBulk asks for a large buffer from the next read of `socket` on (it filled the shared one). */
  readInBulk(socket: Duplex): void {
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

  /**
   * resumeIfWritten: the peer took what we waited for (all of it), so read again,
   * unless a stage still holds its bound (its next write calls this again).
   */
  resumeIfWritten(): void {
    const to = this.peer.socket;
    if (!this.paused || this.socket === null || (to !== null && to.writableLength > 0)) return;
    if (this.stage !== null && !this.stage.mayRead()) return;
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
  mark(socket: Duplex): EndpointSocket {
    const marked = socket as EndpointSocket;
    marked[kEndpoint] = this;
    return marked;
  }

  /** attach makes `socket` (a TCP or Unix socket, read with onread) this endpoint's socket. */
  attach(socket: Socket): EndpointSocket {
    const owned = this.mark(socket);
    this.socket = owned;
    this.transport = socket;
    return owned;
  }

  /**
   * attachWrapper makes `wrapper` (a Duplex standing on `transport`, e.g. a TLS socket)
   * this endpoint's socket, read through 'data' events; `transport` stays for resets.
   */
  attachWrapper(wrapper: Duplex, transport: Socket): EndpointSocket {
    const owned = this.mark(wrapper);
    this.socket = owned;
    this.transport = transport;
    this.readsEvents = true;
    return owned;
  }

  /** delivered: how many of the bytes written to this socket its kernel took (socket-ends.ts). */
  get delivered(): number {
    return this.#settled >= 0 ? this.#settled : deliveredBytes(this);
  }

  /** settleDelivered keeps `delivered` as it is now, before the sockets are destroyed. */
  settleDelivered(): void {
    this.#settled = deliveredBytes(this);
  }

  /** buffered is the number of bytes held in user space for this socket, both ways, and by its stage. */
  get buffered(): number {
    const socket = this.socket;
    const held = this.stage === null ? 0 : this.stage.held;
    return socket === null ? held : socket.writableLength + socket.readableLength + held;
  }
}
