/**
 * Stages between the sockets (src/stage.ts), put in and taken out through the
 * `relaying` hook (kConnectionHooks): real sockets, bytes checked end to end.
 *
 * Two test stages: HoldStage keeps everything (bytes and FIN) until released or taken
 * out; SliceStage cuts every chunk into small pieces and writes them a turn of the
 * event loop later.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Socket } from 'node:net';
import { test } from 'node:test';
import { type ConnectionHooks, kConnectionHooks } from '../src/handshake.js';
import type { ConnectionInfo } from '../src/index.js';
import { LARGE_BYTES } from '../src/read-buffer.js';
import type { Stage, StageControl, StageOutput, Stream } from '../src/stage.js';
import { STAGE_HOLD_BYTES } from '../src/stage-port.js';
import {
  connectClient,
  patternBytes,
  startProxy,
  startUpstream,
  type Upstream,
  waitFor,
} from './helpers/net.js';

/** HoldStage holds every chunk and the FIN until `release()` (or until it is taken out). */
class HoldStage implements Stage {
  readonly name = 'hold';
  #output: StageOutput | null = null;
  #chunks: Buffer[] = [];
  #ended = false;
  held = 0;
  /** received counts every byte given to the stage. */
  received = 0;

  start(output: StageOutput): void {
    this.#output = output;
  }
  write(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.held += chunk.length;
    this.received += chunk.length;
  }
  end(): void {
    this.#ended = true;
  }
  get ended(): boolean {
    return this.#ended;
  }
  release(): void {
    const chunks = this.#chunks;
    this.#chunks = [];
    this.held = 0;
    for (const chunk of chunks) this.#output?.write(chunk);
    if (this.#ended) this.#output?.end();
  }
  stop(): readonly Buffer[] {
    const chunks = this.#chunks;
    this.#chunks = [];
    this.held = 0;
    this.#output = null;
    return chunks;
  }
}

/** SliceStage cuts each chunk into pieces of 1 to 1500 bytes and writes them on the next turn. */
class SliceStage implements Stage {
  readonly name = 'slice';
  #output: StageOutput | null = null;
  #queue: Buffer[] = [];
  #ended = false;
  #immediate: NodeJS.Immediate | null = null;
  #seed: number;
  held = 0;

  constructor(seed: number) {
    this.#seed = seed;
  }
  start(output: StageOutput): void {
    this.#output = output;
  }
  write(chunk: Buffer): void {
    for (let at = 0; at < chunk.length; ) {
      this.#seed = (this.#seed * 1103515245 + 12345) & 0x7fffffff;
      const size = 1 + (this.#seed % 1500);
      this.#queue.push(chunk.subarray(at, at + size));
      at += size;
    }
    this.held += chunk.length;
    this.#schedule();
  }
  end(): void {
    this.#ended = true;
    this.#schedule();
  }
  #schedule(): void {
    this.#immediate ??= setImmediate(() => this.#flush());
  }
  #flush(): void {
    this.#immediate = null;
    const queue = this.#queue;
    this.#queue = [];
    for (const piece of queue) {
      this.held -= piece.length;
      this.#output?.write(piece);
    }
    if (this.#ended) this.#output?.end();
  }
  stop(): readonly Buffer[] {
    if (this.#immediate !== null) clearImmediate(this.#immediate);
    this.#immediate = null;
    const queue = this.#queue;
    this.#queue = [];
    this.held = 0;
    this.#output = null;
    return queue;
  }
}

/** ResetStage ends the connection with a reset on the first chunk (as reset_peer does). */
class ResetStage implements Stage {
  readonly name = 'reset-now';
  readonly held = 0;
  #output: StageOutput | null = null;
  start(output: StageOutput): void {
    this.#output = output;
  }
  write(): void {
    this.#output?.close(true);
  }
  end(): void {}
  stop(): readonly Buffer[] {
    return [];
  }
}

/** A proxy whose connections hand their StageControl to the test as they start relaying. */
async function stagedProxy(
  t: Parameters<typeof startProxy>[0],
  upstream: Upstream,
  onRelaying: (control: StageControl) => void = () => {},
) {
  const controls: StageControl[] = [];
  const hooks: ConnectionHooks = {
    relaying: (control) => {
      controls.push(control);
      onRelaying(control);
    },
  };
  const started = await startProxy(t, {
    targets: [upstream.address],
    ...{ [kConnectionHooks]: hooks },
  });
  return { ...started, controls };
}

function nextClose(proxy: { once(e: 'connectionClose', f: (c: ConnectionInfo) => void): unknown }) {
  return new Promise<ConnectionInfo>((resolve) => proxy.once('connectionClose', resolve));
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** collect gathers a socket's bytes until its FIN. */
function collect(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return once(socket, 'end').then(() => Buffer.concat(chunks));
}

test('bytes pass unchanged both ways while stages are put in and taken out again and again mid-stream', async (t) => {
  const toUpstream = patternBytes(4 * 1024 * 1024, 21);
  const toClient = patternBytes(4 * 1024 * 1024, 22);
  const PIECE = 16 * 1024;
  let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot = collect(socket);
  });
  const { proxy, port, controls } = await stagedProxy(t, upstream);
  const closed = nextClose(proxy);
  const client = connectClient(port);
  const upstreamSocket = await upstream.accepted();
  await waitFor(() => controls.length === 1, 5000, 'the connection relaying');
  const control = controls[0] as StageControl;
  let clientDone = false;
  client.ended.then(() => {
    clientDone = true;
  });
  let upstreamDone = false;
  upstreamGot.then(() => {
    upstreamDone = true;
  });
  // Each turn of the event loop: one piece more from each end, and the stage of a
  // random direction changed (nothing, a HoldStage, a SliceStage), until both ends
  // have everything (the ends' FINs pass through the stages too).
  let seed = 7;
  let changes = 0;
  let at = 0;
  for (let turn = 0; turn < 100_000 && !(clientDone && upstreamDone); turn++) {
    if (at < toUpstream.length) {
      client.socket.write(toUpstream.subarray(at, at + PIECE));
      upstreamSocket.write(toClient.subarray(at, at + PIECE));
      at += PIECE;
      if (at >= toUpstream.length) {
        client.socket.end();
        upstreamSocket.end();
      }
    }
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const stream: Stream = seed % 2 === 0 ? 'upstream' : 'downstream';
    const pick = (seed >> 3) % 3;
    control.setStage(
      stream,
      pick === 0 ? null : pick === 1 ? new HoldStage() : new SliceStage(seed),
    );
    changes += 1;
    await new Promise((r) => setImmediate(r));
    // A HoldStage left in place at the end would hold the last bytes (and the FIN) forever.
    if (at >= toUpstream.length && turn % 50 === 0) {
      control.setStage('upstream', null);
      control.setStage('downstream', null);
    }
  }
  control.setStage('upstream', null);
  control.setStage('downstream', null);
  await client.ended;
  const got = await upstreamGot;
  assert.ok(
    changes >= toUpstream.length / PIECE,
    `stages changed ${changes} times while bytes flowed`,
  );
  assert.equal(sha256(got), sha256(toUpstream), 'upstream got the client bytes unchanged');
  assert.equal(
    sha256(client.received()),
    sha256(toClient),
    'client got the upstream bytes unchanged',
  );
  const info = await closed;
  assert.equal(info.bytesToUpstream, toUpstream.length);
  assert.equal(info.bytesToClient, toClient.length);
});

test('a stage holds bytes and the FIN; taking it out flushes them in order, then the FIN', async (t) => {
  let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot = collect(socket);
  });
  const hold = new HoldStage();
  const { port, controls } = await stagedProxy(t, upstream, (c) => c.setStage('upstream', hold));
  const payload = patternBytes(40 * 1024, 3);
  const client = connectClient(port);
  client.socket.end(payload);
  await waitFor(() => hold.ended, 5000, 'the FIN reaching the stage');
  const upstreamSocket = await upstream.accepted();
  assert.equal(upstreamSocket.bytesRead, 0, 'nothing passed the stage');
  assert.equal(hold.received, payload.length);
  assert.equal(controls[0]?.stageOf('upstream'), hold);
  controls[0]?.setStage('upstream', null);
  const got = await upstreamGot;
  assert.ok(got.equals(payload), 'the held bytes arrive, in order, then the FIN');
  assert.equal(controls[0]?.stageOf('upstream'), null);
});

test('a FIN held by a stage leaves the other direction working; released, it half-closes', async (t) => {
  let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  let upstreamSocket: Socket | undefined;
  const upstream = await startUpstream(t, (socket) => {
    upstreamSocket = socket;
    upstreamGot = collect(socket);
  });
  const hold = new HoldStage();
  const { proxy, port } = await stagedProxy(t, upstream, (c) => c.setStage('upstream', hold));
  const closed = nextClose(proxy);
  const client = connectClient(port);
  client.socket.end('request');
  await waitFor(() => hold.ended, 5000, 'the client FIN reaching the stage');
  // The other direction flows while the FIN is held.
  await waitFor(() => upstreamSocket !== undefined, 5000, 'the upstream accepted');
  upstreamSocket?.write('reply before');
  await waitFor(() => client.received().toString() === 'reply before', 5000, 'the reply');
  assert.equal(proxy.connections()[0]?.state, 'half_closed');
  hold.release();
  const got = await upstreamGot;
  assert.equal(got.toString(), 'request');
  // Half-closed: the upstream still writes after the client's FIN reached it.
  upstreamSocket?.end(' and after');
  await client.ended;
  assert.equal(client.received().toString(), 'reply before and after');
  const info = await closed;
  assert.equal(info.cause, 'client_fin');
});

test('a slow reader holds the sender back through a stage: the proxy holds bounded memory', async (t) => {
  // The bound: what the stage holds plus the client socket's queue stays under
  // STAGE_HOLD_BYTES before each read; one read (at most a large buffer) comes on top,
  // and the upstream socket's own queue is empty (nothing is written to it).
  const BOUND = STAGE_HOLD_BYTES + LARGE_BYTES + new Socket().writableHighWaterMark;
  const chunk = patternBytes(64 * 1024);
  let upstreamSocket: Socket | undefined;
  let written = 0;
  const upstream = await startUpstream(t, (socket) => {
    upstreamSocket = socket;
    const pump = (): void => {
      while (written < 64 * 1024 * 1024 && socket.write(chunk)) written += chunk.length;
    };
    socket.on('drain', pump);
    pump();
  });
  const { proxy, port } = await stagedProxy(t, upstream, (c) =>
    c.setStage('downstream', new SliceStage(5)),
  );
  const client = connectClient(port);
  client.socket.pause();
  await upstream.accepted();
  // Wait until the upstream is blocked (its own send buffer is full and it stopped
  // writing) and the proxy stopped reading it (the stage's many small writes make the
  // proxy slower than the upstream: a pause in one does not mean it is blocked).
  let last = '';
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = `${written} ${proxy.connections()[0]?.bytesFromUpstream}`;
    if (now === last && (upstreamSocket?.writableLength ?? 0) > 0) break;
    last = now;
  }
  const [conn] = proxy.connections();
  assert.ok(conn !== undefined);
  assert.ok(
    conn.buffered <= BOUND,
    `proxy buffers ${conn.buffered} bytes for one slow reader (bound ${BOUND})`,
  );
  assert.ok(written < 64 * 1024 * 1024, 'the upstream was made to wait');
  // Once the client reads, the bytes flow again, unchanged.
  const expected = written;
  client.socket.resume();
  upstreamSocket?.end();
  await client.ended;
  const got = client.received();
  assert.ok(got.length >= expected, `client got ${got.length} of at least ${expected} bytes`);
  for (let at = 0; at < got.length; at += chunk.length) {
    assert.ok(got.subarray(at, at + chunk.length).equals(chunk.subarray(0, got.length - at)));
  }
});

test('a reset passes through a stage that holds bytes: the other side is reset', async (t) => {
  const upstream = await startUpstream(t);
  const hold = new HoldStage();
  const { proxy, port } = await stagedProxy(t, upstream, (c) => c.setStage('downstream', hold));
  const closed = nextClose(proxy);
  const client = connectClient(port);
  const upstreamSocket = await upstream.accepted();
  upstreamSocket.write('held by the stage');
  await waitFor(() => hold.held > 0, 5000, 'bytes held by the stage');
  let upstreamError: string | null = null;
  upstreamSocket.on('error', (err: NodeJS.ErrnoException) => {
    upstreamError = err.code ?? 'UNKNOWN';
  });
  client.socket.resetAndDestroy();
  const info = await closed;
  assert.equal(info.cause, 'client_reset');
  await waitFor(() => upstreamError !== null, 5000, 'the upstream reset');
  assert.equal(upstreamError, 'ECONNRESET');
});

test('a stage can end the connection with a reset both ways (cause toxic)', async (t) => {
  const upstream = await startUpstream(t);
  const { proxy, port } = await stagedProxy(t, upstream, (c) =>
    c.setStage('upstream', new ResetStage()),
  );
  const closed = nextClose(proxy);
  const client = connectClient(port);
  const upstreamSocket = await upstream.accepted();
  let upstreamError: string | null = null;
  upstreamSocket.on('error', (err: NodeJS.ErrnoException) => {
    upstreamError = err.code ?? 'UNKNOWN';
  });
  await waitFor(() => proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  client.socket.write('x');
  let upstreamEnded = false;
  upstreamSocket.on('end', () => {
    upstreamEnded = true;
  });
  const info = await closed;
  assert.equal(info.cause, 'toxic');
  // Either a reset or a FIN arrives at each end: it must be the reset.
  await waitFor(() => client.errorCode !== null || client.sawEnd, 5000, 'the client end');
  assert.equal(client.errorCode, 'ECONNRESET');
  await waitFor(() => upstreamError !== null || upstreamEnded, 5000, 'the upstream end');
  assert.equal(upstreamError, 'ECONNRESET');
});
