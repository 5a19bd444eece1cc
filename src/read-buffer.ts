/**
 * Read buffers: where the bytes read from a socket land.
 *
 * By default Node allocates a new buffer for every read and pushes it through the
 * stream machinery ('data' events). A proxy only passes the bytes on, so instead each
 * endpoint reads into a buffer of its own choosing (Node's `onread` option: libuv
 * reads straight into it and calls us with the byte count):
 *
 * - by default every socket reads into ONE shared buffer (SMALL_BYTES, the size of
 *   the messages of most request/response protocols). The relay writes a copy of what
 *   it read there, so the shared buffer is free again as soon as the callback
 *   returns, and an idle connection costs no buffer at all;
 * - when a read fills the shared buffer, the endpoint borrows a large buffer
 *   (LARGE_BYTES) from a process-wide pool for the reads that follow, and those are
 *   written without a copy. It gives the large buffer back once reads are small again
 *   (or the socket closes). At most MAX_LARGE_LENT are lent at once, so bulk transfers
 *   cost at most MAX_LARGE_LENT × LARGE_BYTES for the whole process, however many
 *   connections there are.
 *
 * The rule that keeps bytes intact: a large buffer is read into by one socket only,
 * and that socket is not read again while part of its last chunk still waits in Node
 * for the peer's kernel buffer (the write is pending and points into the buffer). The
 * relay stops reading in that case and resumes when the write is done (relay.ts).
 * The shared buffer is never pointed into by a pending write: its bytes are copied.
 *
 * Accepted sockets cannot be given `onread` through the public API (net.Server has no
 * such option), so the symbols Node uses for it are borrowed from a socket that is
 * created with the option. They are looked up once, the first time they are needed
 * (requireOnread, called when a listener is created), not when this module loads: a
 * library user who imports the package and never starts a proxy gets no probe socket.
 * If a Node version lacks them, requireOnread throws, so the proxy refuses to start
 * rather than fail on its first connection.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** SMALL_BYTES is the size of the shared read buffer. */
export const SMALL_BYTES = 16 * 1024;
/** SHARED_READ_BUFFER is where every socket reads until it borrows a large buffer. */
export const SHARED_READ_BUFFER: Buffer = Buffer.allocUnsafeSlow(SMALL_BYTES);
/**
 * LARGE_BYTES is a pooled buffer lent for bulk reads. 1 MiB: measured against 256 and
 * 512 KiB (docs/performance.md), fewer and larger system calls per GB move one stream
 * 20 % faster at a third less CPU per GB.
 */
export const LARGE_BYTES = 1024 * 1024;
/** MAX_LARGE_LENT bounds the large buffers lent at once, process-wide (64 MiB in all). */
export const MAX_LARGE_LENT = 64;
// Large buffers kept for reuse when given back; more are left to the GC.
const MAX_LARGE_FREE = 8;

const freeLarge: Buffer[] = [];
let largeLent = 0;

/** borrowLarge lends a large buffer, or returns null when MAX_LARGE_LENT are out. */
export function borrowLarge(): Buffer | null {
  if (largeLent >= MAX_LARGE_LENT) return null;
  largeLent += 1;
  return freeLarge.pop() ?? Buffer.allocUnsafeSlow(LARGE_BYTES);
}

/** giveBackLarge returns a buffer lent by borrowLarge; the caller must not use it again. */
export function giveBackLarge(buffer: Buffer): void {
  largeLent -= 1;
  if (freeLarge.length < MAX_LARGE_FREE) freeLarge.push(buffer);
}

/** largeBuffersLent is how many large buffers are lent now (for tests and stats). */
export function largeBuffersLent(): number {
  return largeLent;
}

interface OnreadSymbols {
  readonly kBuffer: symbol;
  readonly kBufferCb: symbol;
  readonly kBufferGen: symbol;
}

function borrowOnreadSymbols(): OnreadSymbols {
  // `onread` works for any Socket; @types/node lists it only for net.connect's options.
  const options = { onread: { buffer: Buffer.alloc(1), callback: () => true } };
  const probe = new Socket(options as ConstructorParameters<typeof Socket>[0]);
  const own = Object.getOwnPropertySymbols(probe);
  const find = (name: string): symbol | undefined => own.find((s) => s.description === name);
  const kBuffer = find('kBuffer');
  const kBufferCb = find('kBufferCb');
  const kBufferGen = find('kBufferGen');
  probe.destroy();
  if (kBuffer && kBufferCb && kBufferGen) return { kBuffer, kBufferCb, kBufferGen };
  throw new Error(
    `l4proxy: this Node.js (${process.version}) lacks the onread internals the relay relies on (tested: Node 20, 24 and 26)`,
  );
}

// Found once, the first time they are needed (requireOnread).
let found: OnreadSymbols | null = null;

function onreadSymbols(): OnreadSymbols {
  found ??= borrowOnreadSymbols();
  return found;
}

/**
 * requireOnread looks up the onread internals now if not done yet, and throws if this
 * Node lacks them. A listener calls it when it is created, so a Node without them
 * refuses to start instead of failing on the first connection.
 */
export function requireOnread(): void {
  onreadSymbols();
}

/** ReadCallback is called with the bytes read into `buffer`; false stops reading. */
export type ReadCallback = (bytes: number, buffer: Uint8Array) => boolean;

// The parts of a TCP handle used here; `_handle` itself is Node's, not public API.
interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void;
}

/**
 * readsIntoOwnBuffer makes an accepted socket, still paused (pauseOnConnect), read
 * into `first`, calling `callback` instead of emitting 'data' (chooseBuffersWith
 * changes the buffer later). Reading starts with `socket.resume()`.
 */
export function readsIntoOwnBuffer(socket: Socket, first: Buffer, callback: ReadCallback): void {
  const handle = (socket as unknown as { _handle: UserBufferHandle | null })._handle;
  if (handle === null) throw new Error('readsIntoOwnBuffer: the socket has no handle');
  const symbols = onreadSymbols();
  const target = socket as unknown as Record<symbol, unknown>;
  target[symbols.kBuffer] = first;
  target[symbols.kBufferCb] = callback;
  target[symbols.kBufferGen] = null;
  handle.useUserBuffer(first);
}

/**
 * chooseBuffersWith makes Node call `next()` after each read of `socket` and read into
 * what it returns (null: keep the current buffer). Node reads this property after
 * every read, so it can be set at any time, for instance when a read fills the shared
 * buffer and the endpoint wants a large one from then on.
 */
export function chooseBuffersWith(socket: Duplex, next: (() => Buffer) | null): void {
  (socket as unknown as Record<symbol, unknown>)[onreadSymbols().kBufferGen] = next;
}

/** setReadCallback makes later reads of a socket set up by readsIntoOwnBuffer call `callback`. */
export function setReadCallback(socket: Duplex, callback: ReadCallback): void {
  (socket as unknown as Record<symbol, unknown>)[onreadSymbols().kBufferCb] = callback;
}
