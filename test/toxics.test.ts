/**
 * Each toxic's effect on real sockets through the proxy (src/faults/): a ToxicRegistry
 * gets each connection from the listener's `relaying` hook and forgets it on
 * `connectionClose`, as the Toxiproxy API does. Times are checked from below exactly
 * (a toxic never makes things faster) and from above only with a deadline scaled for
 * a loaded machine.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { seededRandom } from '../src/faults/env.js';
import { ToxicRegistry } from '../src/faults/registry.js';
import { type ConnectionHooks, kConnectionHooks } from '../src/handshake.js';
import type { ConnectionInfo } from '../src/index.js';
import type { StageControl } from '../src/stage.js';
import { STAGE_HOLD_BYTES } from '../src/stage-port.js';
import { withTimeout } from './helpers/cli.js';
import {
  connectClient,
  echo,
  patternBytes,
  startProxy,
  startUpstream,
  type Upstream,
  waitFor,
} from './helpers/net.js';
import { deadline } from './helpers/time.js';

/** toxicProxy: a proxy in front of `upstream` whose connections follow `registry`. */
async function toxicProxy(t: TestContext, upstream: Upstream, registry: ToxicRegistry) {
  const controls: StageControl[] = [];
  const hooks: ConnectionHooks = {
    relaying: (control) => {
      controls.push(control);
      registry.attach(control);
    },
  };
  const started = await startProxy(t, {
    targets: [upstream.address],
    ...{ [kConnectionHooks]: hooks },
  });
  const closes: ConnectionInfo[] = [];
  started.proxy.on('connectionClose', (info: ConnectionInfo) => {
    closes.push(info);
    registry.detach(info.id);
  });
  return { ...started, controls, closes };
}

/** closingToxic: the name of the toxic that closed the connection (the close record's `toxic`). */
function closingToxic(control: StageControl | undefined): unknown {
  return (control as { closingStage?: unknown } | undefined)?.closingStage;
}

/** collect records a socket's reads (sizes and bytes) and when its FIN came. */
function collect(socket: Socket) {
  const got = { chunks: [] as Buffer[], endAt: 0, ended: false };
  socket.on('data', (c: Buffer) => got.chunks.push(c));
  socket.on('end', () => {
    got.ended = true;
    got.endAt = performance.now();
  });
  return {
    got,
    bytes: () => Buffer.concat(got.chunks),
  };
}

test('latency delays each direction by at least `latency` ms', async (t) => {
  const upstream = await startUpstream(t, echo);
  const registry = new ToxicRegistry();
  registry.add({ type: 'latency', stream: 'upstream', attributes: { latency: 150 } });
  registry.add({ type: 'latency', attributes: { latency: 100, jitter: 20 } });
  const { port } = await toxicProxy(t, upstream, registry);
  const client = connectClient(port);
  await once(client.socket, 'connect');
  const upstreamSocket = await upstream.accepted();
  let upstreamAt = 0;
  upstreamSocket.once('data', () => {
    upstreamAt = performance.now();
  });
  const sentAt = performance.now();
  client.socket.write('ping');
  await waitFor(() => client.received().toString() === 'ping', 5000, 'the echo');
  const roundTripMs = performance.now() - sentAt;
  assert.ok(upstreamAt - sentAt >= 150, `upstream got it after ${upstreamAt - sentAt} ms`);
  assert.ok(roundTripMs >= 150 + 80, `round trip ${roundTripMs} ms`);
  assert.ok(roundTripMs < deadline(1000), `round trip ${roundTripMs} ms`);
});

test('bandwidth: 100 KB at 50 KB/s takes about two seconds, every byte intact', async (t) => {
  const payload = patternBytes(100_000, 5);
  const upstream = await startUpstream(t, (socket) => socket.end(payload));
  const registry = new ToxicRegistry();
  registry.add({ type: 'bandwidth', attributes: { rate: 50 } });
  const { port } = await toxicProxy(t, upstream, registry);
  const startedAt = performance.now();
  const client = connectClient(port);
  await withTimeout(client.ended, 5000, 'the client FIN');
  const elapsedMs = performance.now() - startedAt;
  assert.ok(client.received().equals(payload));
  assert.ok(elapsedMs >= 1500, `100 KB took ${elapsedMs} ms`);
  assert.ok(elapsedMs < deadline(3000), `100 KB took ${elapsedMs} ms`);
});

test('slicer delivers in pieces of about average_size, every byte intact, in order', async (t) => {
  let received: ReturnType<typeof collect> | undefined;
  const upstream = await startUpstream(t, (socket) => {
    received = collect(socket);
  });
  const registry = new ToxicRegistry();
  registry.add({
    type: 'slicer',
    stream: 'upstream',
    attributes: { average_size: 1000, size_variation: 200, delay: 5000 },
  });
  const { port } = await toxicProxy(t, upstream, registry);
  const payload = patternBytes(20_000, 6);
  const client = connectClient(port);
  client.socket.end(payload);
  await waitFor(() => received?.got.ended === true, 5000, 'the FIN after the pieces');
  const sizes = received?.got.chunks.map((c) => c.length) ?? [];
  assert.ok(received?.bytes().equals(payload), 'every byte, in order');
  // Pieces are 400 to 1200 bytes, 5 ms apart; a loaded reader may see two as one.
  assert.ok(sizes.length >= 10, `${sizes.length} reads: ${sizes.join(' ')}`);
  const median = [...sizes].sort((a, b) => a - b)[Math.floor(sizes.length / 2)] ?? 0;
  assert.ok(median >= 400 && median <= 1200, `median read ${median}: ${sizes.join(' ')}`);
});

for (const stream of ['upstream', 'downstream'] as const) {
  test(`limit_data on ${stream} closes the connection after exactly \`bytes\` bytes (cause toxic)`, async (t) => {
    const payload = patternBytes(50_000, 7);
    let received: ReturnType<typeof collect> | undefined;
    const upstream = await startUpstream(t, (socket) => {
      received = collect(socket);
      if (stream === 'downstream') socket.write(payload);
    });
    const registry = new ToxicRegistry();
    registry.add({ type: 'limit_data', stream, attributes: { bytes: 1234 } });
    const { port, closes, controls } = await toxicProxy(t, upstream, registry);
    const client = connectClient(port);
    if (stream === 'upstream') client.socket.write(payload);
    // Closed with bytes it never read, the client's socket sends the client a reset;
    // otherwise the client gets a FIN.
    if (stream === 'upstream') await withTimeout(client.closed, 5000, 'the client closed');
    else await withTimeout(client.ended, 5000, 'the client FIN');
    await waitFor(() => closes.length === 1, 5000, 'the close record');
    assert.equal(closes[0]?.cause, 'toxic');
    assert.equal(closingToxic(controls[0]), `limit_data_${stream}`);
    if (stream === 'upstream') {
      await waitFor(() => received?.got.ended === true, 5000, 'the upstream closed');
      assert.ok(received?.bytes().equals(payload.subarray(0, 1234)));
    } else {
      assert.ok(client.received().equals(payload.subarray(0, 1234)));
    }
  });
}

test('timeout closes the connection after `timeout` ms and lets nothing through', async (t) => {
  const upstream = await startUpstream(t, (socket) => socket.write('never seen'));
  const registry = new ToxicRegistry();
  registry.add({ type: 'timeout', attributes: { timeout: 300 } });
  const { port, closes, controls } = await toxicProxy(t, upstream, registry);
  const startedAt = performance.now();
  const client = connectClient(port);
  await withTimeout(client.ended, 5000, 'the client FIN');
  const elapsedMs = performance.now() - startedAt;
  await waitFor(() => closes.length === 1, 5000, 'the close record');
  assert.equal(client.received().length, 0);
  assert.equal(closes[0]?.cause, 'toxic');
  assert.equal(closingToxic(controls[0]), 'timeout_downstream');
  assert.ok(elapsedMs >= 300, `closed after ${elapsedMs} ms`);
  assert.ok(elapsedMs < deadline(1500), `closed after ${elapsedMs} ms`);
});

test('timeout 0 added to an open connection holds the data until removed; then all of it arrives, and the FIN', async (t) => {
  let received: ReturnType<typeof collect> | undefined;
  const upstream = await startUpstream(t, (socket) => {
    received = collect(socket);
  });
  const registry = new ToxicRegistry();
  const { port, controls } = await toxicProxy(t, upstream, registry);
  const client = connectClient(port);
  await waitFor(() => controls.length === 1, 5000, 'the connection relaying');
  assert.equal(controls[0]?.stageOf('upstream'), null, 'no toxic: no stage');
  registry.add({ type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } });
  const payload = patternBytes(300_000, 8);
  client.socket.end(payload);
  // The relay reads until the toxic holds STAGE_HOLD_BYTES, then stops: only then is
  // "nothing arrived" a finding rather than a race.
  await waitFor(
    () => (controls[0]?.stageOf('upstream')?.held ?? 0) >= STAGE_HOLD_BYTES,
    5000,
    'the timeout toxic to hold a full stage of bytes',
  );
  assert.equal(received?.got.chunks.length, 0, 'nothing passed the timeout toxic');
  registry.remove('timeout_upstream');
  await waitFor(() => received?.got.ended === true, 5000, 'the held bytes and the FIN');
  assert.ok(received?.bytes().equals(payload));
  assert.equal(controls[0]?.stageOf('upstream'), null, 'the empty chain was taken out');
});

test('reset_peer resets the client (ECONNRESET) `timeout` ms after the first data', async (t) => {
  const upstream = await startUpstream(t, echo);
  const registry = new ToxicRegistry();
  registry.add({ type: 'reset_peer', stream: 'upstream', attributes: { timeout: 200 } });
  const { port, closes, controls } = await toxicProxy(t, upstream, registry);
  const client = connectClient(port);
  await waitFor(() => controls.length === 1, 5000, 'the connection relaying');
  const upstreamSocket = await upstream.accepted();
  let upstreamError: string | null = null;
  upstreamSocket.on('error', (err: NodeJS.ErrnoException) => {
    upstreamError = err.code ?? 'UNKNOWN';
  });
  const sentAt = performance.now();
  client.socket.write('hello');
  assert.equal(await withTimeout(client.closed, 5000, 'the client closed'), 'ECONNRESET');
  const elapsedMs = performance.now() - sentAt;
  assert.ok(elapsedMs >= 200, `reset after ${elapsedMs} ms`);
  assert.ok(elapsedMs < deadline(1000), `reset after ${elapsedMs} ms`);
  await waitFor(() => upstreamError !== null, 5000, 'the upstream reset');
  assert.equal(upstreamError, 'ECONNRESET');
  await waitFor(() => closes.length === 1, 5000, 'the close record');
  assert.equal(closes[0]?.cause, 'toxic');
  assert.equal(closingToxic(controls[0]), 'reset_peer_upstream');
});

test('slow_close delays the FIN by `delay` ms; the bytes before it and the other direction are not delayed', async (t) => {
  let upstreamGot: ReturnType<typeof collect> | undefined;
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot = collect(socket);
  });
  const registry = new ToxicRegistry();
  registry.add({ type: 'slow_close', attributes: { delay: 400 } });
  const { port } = await toxicProxy(t, upstream, registry);
  const client = connectClient(port);
  const upstreamSocket = await upstream.accepted();
  const endedAt = performance.now();
  upstreamSocket.end('bye');
  await waitFor(() => client.received().toString() === 'bye', 5000, 'the bytes');
  assert.ok(!client.sawEnd, 'the FIN waits');
  // Half-closed meanwhile: the client still sends, the upstream still gets it.
  client.socket.write('still here');
  await waitFor(() => upstreamGot?.bytes().toString() === 'still here', 5000, 'the other way');
  await withTimeout(client.ended, 5000, 'the client FIN');
  const finMs = performance.now() - endedAt;
  assert.ok(finMs >= 400, `FIN after ${finMs} ms`);
  assert.ok(finMs < deadline(1500), `FIN after ${finMs} ms`);
  client.socket.end();
  await withTimeout(client.closed, 5000, 'the client closed');
});

test('half-close passes through a chain of every delaying toxic, both ways', async (t) => {
  let upstreamGot: ReturnType<typeof collect> | undefined;
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot = collect(socket);
  });
  const registry = new ToxicRegistry();
  for (const stream of ['upstream', 'downstream'] as const) {
    registry.add({ type: 'latency', stream, attributes: { latency: 20, jitter: 10 } });
    registry.add({
      type: 'slicer',
      stream,
      attributes: { average_size: 500, size_variation: 100 },
    });
    registry.add({ type: 'bandwidth', stream, attributes: { rate: 2000 } });
    registry.add({ type: 'slow_close', stream, attributes: { delay: 50 } });
    registry.add({ type: 'noop', stream });
  }
  const { port, closes } = await toxicProxy(t, upstream, registry);
  const request = patternBytes(30_000, 9);
  const reply = patternBytes(40_000, 10);
  const client = connectClient(port);
  client.socket.end(request);
  await waitFor(() => upstreamGot?.got.ended === true, 5000, 'the request and its FIN');
  assert.ok(upstreamGot?.bytes().equals(request));
  const upstreamSocket = await upstream.accepted();
  upstreamSocket.end(reply); // after the client's FIN: the connection was half-closed
  await withTimeout(client.ended, 5000, 'the client FIN');
  assert.ok(client.received().equals(reply));
  await waitFor(() => closes.length === 1, 5000, 'the close record');
  assert.equal(closes[0]?.cause, 'client_fin');
});

test('toxicity 0 is never applied, 1 always, and a fraction follows the seeded source', async (t) => {
  const upstream = await startUpstream(t, echo);
  const registry = new ToxicRegistry({ random: seededRandom(7) });
  registry.add({ type: 'limit_data', name: 'never', toxicity: 0, attributes: { bytes: 0 } });
  registry.add({ type: 'latency', name: 'always', stream: 'upstream', toxicity: 1 });
  registry.add({ type: 'reset_peer', name: 'half', stream: 'upstream', toxicity: 0.5 });
  const { port, controls } = await toxicProxy(t, upstream, registry);
  // The draws the registry makes: one per connection, for `half` only (0 and 1 draw nothing).
  const draws = seededRandom(7);
  for (let i = 0; i < 8; i++) {
    const reset = draws() < 0.5;
    const client = connectClient(port);
    await waitFor(() => controls.length === i + 1, 5000, 'the connection relaying');
    assert.equal(controls[i]?.stageOf('downstream'), null, 'toxicity 0: not even a stage');
    assert.ok(controls[i]?.stageOf('upstream') !== null, 'toxicity 1: always');
    client.socket.write('x');
    if (reset) {
      assert.equal(
        await withTimeout(client.closed, 5000, 'the client closed'),
        'ECONNRESET',
        `connection ${i} drew the reset`,
      );
    } else {
      await waitFor(() => client.received().toString() === 'x', 5000, `connection ${i} echo`);
      client.socket.destroy();
    }
  }
});
