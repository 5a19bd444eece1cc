/**
 * What the soak's driver (bench/soak.ts) and its upstream (bench/soak-upstream.ts)
 * share: a seeded random generator, the pool that every sent byte is sliced from,
 * the header a client sends first to tell the upstream how to behave, and the loop
 * that sends a stream in random chunks with random pauses, honouring backpressure.
 *
 * Both processes build the same pool from the run's seed, but nothing relies on
 * that: each side hashes what it actually wrote and what it actually read, and the
 * driver compares the two hashes of each direction.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Socket } from 'node:net';

/** Rng is a seeded generator of floats in [0, 1) (mulberry32: small, fast, reproducible). */
export type Rng = () => number;

/** makeRng returns a generator seeded with `seed` (a 32-bit integer). */
export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** intBetween returns a whole number in [min, max], uniformly. */
export function intBetween(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

/** logUniform returns a whole number in [min, max] whose logarithm is uniform (many small, some large). */
export function logUniform(rng: Rng, min: number, max: number): number {
  return Math.floor(Math.exp(Math.log(min) + rng() * (Math.log(max + 1) - Math.log(min))));
}

export const MAX_CHUNK = 64 * 1024;
const POOL_BYTES = 1024 * 1024;

/** makePool returns POOL_BYTES + MAX_CHUNK pseudo-random bytes; chunks are slices of it. */
export function makePool(seed: number): Buffer {
  const pool = Buffer.allocUnsafe(POOL_BYTES + MAX_CHUNK);
  const rng = makeRng(seed ^ 0x5eed);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((rng() * 4294967296) >>> 0, i);
  return pool;
}

/** What the upstream does with its side of a connection (the header's `upstreamMode`). */
export const UpstreamMode = {
  /** Send everything, and FIN only once the client's FIN arrived (the client FINs first). */
  finAfterClient: 0,
  /** Send everything, then FIN at once (the upstream FINs first). */
  finFirst: 1,
  /** Send everything, then FIN, whatever the client does (either may FIN first). */
  finWhenDone: 2,
  /** Send `resetAfter` bytes (at most), then reset. */
  reset: 3,
  /** Send everything, FIN, then reset a moment later. */
  finThenReset: 4,
} as const;
export type UpstreamMode = (typeof UpstreamMode)[keyof typeof UpstreamMode];

/** Header is the first HEADER_BYTES bytes a soak client sends: the upstream's instructions. */
export interface Header {
  id: number;
  toClientBytes: number;
  upstreamSeed: number;
  upstreamMode: UpstreamMode;
  /** upstreamSlow: the upstream stops reading for a while (a slow reader). */
  upstreamSlow: boolean;
  resetAfter: number;
}

export const HEADER_BYTES = 24;
const MAGIC = 0x4b414f53; // "SOAK" little-endian

/** encodeHeader writes `h` in HEADER_BYTES bytes. */
export function encodeHeader(h: Header): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(h.id, 4);
  buf.writeUInt32LE(h.toClientBytes, 8);
  buf.writeUInt32LE(h.upstreamSeed >>> 0, 12);
  buf.writeUInt8(h.upstreamMode, 16);
  buf.writeUInt8(h.upstreamSlow ? 1 : 0, 17);
  buf.writeUInt32LE(h.resetAfter, 20);
  return buf;
}

/** decodeHeader reads a header, or returns null when the bytes are not one. */
export function decodeHeader(buf: Buffer): Header | null {
  if (buf.length < HEADER_BYTES || buf.readUInt32LE(0) !== MAGIC) return null;
  const mode = buf.readUInt8(16);
  if (mode > 4) return null;
  return {
    id: buf.readUInt32LE(4),
    toClientBytes: buf.readUInt32LE(8),
    upstreamSeed: buf.readUInt32LE(12),
    upstreamMode: mode as UpstreamMode,
    upstreamSlow: buf.readUInt8(17) === 1,
    resetAfter: buf.readUInt32LE(20),
  };
}

/** sleep resolves after `ms`; `unref` so a pause never keeps a finished process alive. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * finish sends a FIN (end()) and resolves once the shutdown is done (or the socket
 * closed). A soak peer resets only after that: Node refuses a reset while its own
 * shutdown is under way (EINVAL) and then never closes the socket, which would hang
 * the soak's peer, not the proxy.
 */
export function finish(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.removeListener('finish', done);
      socket.removeListener('close', done);
      resolve();
    };
    socket.on('finish', done);
    socket.on('close', done);
    socket.end();
  });
}

/** writable resolves when `socket` drained its buffer or closed, whichever comes first. */
function writable(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.removeListener('drain', done);
      socket.removeListener('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Tally counts and hashes the bytes of one direction, as one side saw them. */
export interface Tally {
  bytes: number;
  readonly hash: Hash;
}

/** newTally starts an empty tally. */
export function newTally(): Tally {
  return { bytes: 0, hash: createHash('sha256') };
}

/** addTo adds `chunk` to `tally`. */
export function addTo(tally: Tally, chunk: Buffer): void {
  tally.bytes += chunk.length;
  tally.hash.update(chunk);
}

/**
 * sendStream writes `total` bytes to `socket` in chunks of 1 byte to 64 KiB, slices of
 * `pool` at random offsets, pausing now and then, and waiting for 'drain' whenever
 * write() says the buffer is full. Every chunk handed to write() is added to `sent`.
 * It stops early when the socket can no longer be written.
 */
export async function sendStream(
  socket: Socket,
  total: number,
  rng: Rng,
  pool: Buffer,
  sent: Tally,
): Promise<void> {
  const end = sent.bytes + total;
  for (let i = 0; sent.bytes < end && i < 10_000_000; i++) {
    if (socket.destroyed || !socket.writable) return;
    const size = Math.min(end - sent.bytes, logUniform(rng, 1, MAX_CHUNK));
    const offset = Math.floor(rng() * (pool.length - MAX_CHUNK));
    const chunk = pool.subarray(offset, offset + size);
    addTo(sent, chunk);
    if (!socket.write(chunk)) await writable(socket);
    if (rng() < 0.05) await sleep(intBetween(rng, 1, 30));
  }
}

/**
 * onData hands every chunk read from `socket` to `received`. With `slow`, the socket
 * is a slow reader: once `afterBytes` have arrived it stops reading for `pauseMs` (so
 * the sender's buffers fill and backpressure holds), then reads on.
 */
export function onData(
  socket: Socket,
  received: (chunk: Buffer) => void,
  slow: { afterBytes: number; pauseMs: number } | null,
): void {
  let bytes = 0;
  let paused = slow === null;
  socket.on('data', function soakOnData(chunk: Buffer) {
    received(chunk);
    bytes += chunk.length;
    if (!paused && slow !== null && bytes >= slow.afterBytes) {
      paused = true;
      socket.pause();
      setTimeout(() => socket.resume(), slow.pauseMs).unref();
    }
  });
}
