/**
 * ToxicRegistry (src/faults/registry.ts) on live connections, real sockets: toxics
 * added, updated and removed while bytes flow both ways lose, duplicate and reorder
 * nothing (Toxiproxy's TestNoDataDropped, both directions, with a FIN each way), and an
 * update acts on open connections at once.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { seededRandom } from '../src/faults/env.js';
import { ToxicRegistry } from '../src/faults/registry.js';
import type { Toxic } from '../src/faults/toxic.js';
import { type ConnectionHooks, kConnectionHooks } from '../src/handshake.js';
import type { ConnectionInfo } from '../src/index.js';
import type { StageControl, Stream } from '../src/stage.js';
import { withTimeout } from './helpers/cli.js';
import {
  connectClient,
  patternBytes,
  startProxy,
  startUpstream,
  type Upstream,
  waitFor,
} from './helpers/net.js';

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

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function collect(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return once(socket, 'end').then(() => Buffer.concat(chunks));
}

/** A toxic that keeps every byte, with attributes drawn from `random`. */
function keepingToxic(random: () => number): { type: string; attributes: Record<string, number> } {
  const pick = Math.floor(random() * 6);
  const n = (max: number) => Math.floor(random() * max);
  switch (pick) {
    case 0:
      return { type: 'latency', attributes: { latency: n(20), jitter: n(10) } };
    case 1: {
      const average_size = 1 + n(3000);
      return {
        type: 'slicer',
        attributes: { average_size, size_variation: n(average_size), delay: n(300) },
      };
    }
    case 2:
      return { type: 'bandwidth', attributes: { rate: 5000 + n(50_000) } };
    case 3:
      return { type: 'slow_close', attributes: { delay: n(30) } };
    case 4:
      return { type: 'timeout', attributes: { timeout: 0 } };
    default:
      return { type: 'noop', attributes: {} };
  }
}

test('no byte is dropped, duplicated or reordered while toxics are added, updated and removed mid-stream, both ways', async (t) => {
  const toUpstream = patternBytes(3 * 1024 * 1024, 31);
  const toClient = patternBytes(3 * 1024 * 1024, 32);
  const PIECE = 16 * 1024;
  let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot = collect(socket);
  });
  const random = seededRandom(1234);
  const registry = new ToxicRegistry({ random });
  const { port, controls, closes } = await toxicProxy(t, upstream, registry);
  const client = connectClient(port);
  const upstreamSocket = await upstream.accepted();
  await waitFor(() => controls.length === 1, 5000, 'the connection relaying');
  let clientDone = false;
  client.ended.then(() => {
    clientDone = true;
  });
  let upstreamDone = false;
  upstreamGot.then(() => {
    upstreamDone = true;
  });
  const counts = { add: 0, update: 0, remove: 0 };
  let named = 0;
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
    const toxics = registry.list();
    const choice = random();
    if (toxics.length < 6 && choice < 0.45) {
      const stream: Stream = random() < 0.5 ? 'upstream' : 'downstream';
      registry.add({ ...keepingToxic(random), stream, name: `t${named++}` });
      counts.add += 1;
    } else if (toxics.length > 0 && choice < 0.7) {
      const toxic = toxics[Math.floor(random() * toxics.length)] as Toxic;
      const fresh = keepingToxic(random);
      const attributes = toxic.type === fresh.type ? fresh.attributes : {};
      registry.update(toxic.name, { attributes, toxicity: random() < 0.2 ? 0.5 : 1 });
      counts.update += 1;
    } else if (toxics.length > 0) {
      registry.remove((toxics[Math.floor(random() * toxics.length)] as Toxic).name);
      counts.remove += 1;
    }
    await new Promise((r) => setTimeout(r, random() < 0.1 ? 5 : 0));
    // Once everything is sent, a timeout toxic would hold the end forever: clear now and then.
    if (at >= toUpstream.length && turn % 40 === 0) registry.reset();
  }
  registry.reset();
  await withTimeout(client.ended, 5000, 'the client FIN');
  const got = await withTimeout(upstreamGot, 5000, 'the upstream FIN');
  assert.ok(
    counts.add > 20 && counts.update > 10 && counts.remove > 10,
    `toxics changed while bytes flowed: ${JSON.stringify(counts)}`,
  );
  assert.equal(sha256(got), sha256(toUpstream), 'upstream got the client bytes unchanged');
  assert.equal(sha256(client.received()), sha256(toClient), 'client got the upstream bytes');
  await waitFor(() => closes.length === 1, 5000, 'the close record');
  assert.equal(closes[0]?.bytesToUpstream, toUpstream.length);
  assert.equal(closes[0]?.bytesToClient, toClient.length);
  assert.equal(registry.connectionCount, 0, 'the closed connection was forgotten');
});

test('an update acts on open connections at once; limit_data keeps its count across it', async (t) => {
  let upstreamSocketGot: Buffer[] = [];
  const upstream = await startUpstream(t, (socket) => {
    upstreamSocketGot = [];
    socket.on('data', (c: Buffer) => upstreamSocketGot.push(c));
  });
  const registry = new ToxicRegistry();
  registry.add({ type: 'limit_data', stream: 'upstream', attributes: { bytes: 100 } });
  const { port, controls, closes } = await toxicProxy(t, upstream, registry);
  const client = connectClient(port);
  await waitFor(() => controls.length === 1, 5000, 'the connection relaying');
  client.socket.write(Buffer.alloc(60, 1));
  await waitFor(() => Buffer.concat(upstreamSocketGot).length === 60, 5000, 'the first 60 bytes');
  // Raised to 150: 90 more bytes pass, not 150.
  registry.update('limit_data_upstream', { attributes: { bytes: 150 } });
  client.socket.write(Buffer.alloc(200, 2));
  await waitFor(() => client.sawEnd || client.errorCode !== null, 5000, 'the client closed');
  await waitFor(() => closes.length === 1, 5000, 'the close record');
  assert.equal(closes[0]?.cause, 'toxic');
  assert.deepEqual(
    Buffer.concat(upstreamSocketGot),
    Buffer.concat([Buffer.alloc(60, 1), Buffer.alloc(90, 2)]),
  );
});

test('a toxic whose toxicity drops to 0 leaves open connections, and its held bytes go on', async (t) => {
  let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot = collect(socket);
  });
  const registry = new ToxicRegistry();
  registry.add({ type: 'timeout', name: 'hold', stream: 'upstream' });
  const { port, controls } = await toxicProxy(t, upstream, registry);
  const client = connectClient(port);
  await waitFor(() => controls.length === 1, 5000, 'the connection relaying');
  client.socket.end('held, then released');
  await waitFor(() => (controls[0]?.stageOf('upstream')?.held ?? 0) > 0, 5000, 'bytes held');
  registry.update('hold', { toxicity: 0 });
  assert.equal(
    (await withTimeout(upstreamGot, 5000, 'the upstream FIN')).toString(),
    'held, then released',
  );
  assert.equal(controls[0]?.stageOf('upstream'), null);
});
