/**
 * Toxics added over Toxiproxy's HTTP API act on the data path (issue #12): the npm
 * `toxiproxy-node-client` drives an AdminServer in front of a proxy, and real bytes
 * go through the listener to an echo upstream on 127.0.0.1. Each listener's
 * ToxicRegistry (Supervisor.toxicRegistry) gets its connections only while it has
 * toxics; a plain listener relays with no stage.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { Toxiproxy } from 'toxiproxy-node-client';
import { createSupervisor } from '../src/create-proxy.js';
import { type ConnectionHooks, kConnectionHooks } from '../src/handshake.js';
import { AdminServer, type ConnectionInfo } from '../src/index.js';
import type { StageControl } from '../src/stage.js';
import type { Supervisor } from '../src/supervisor.js';
import { withTimeout } from './helpers/cli.js';
import {
  connectClient,
  echo,
  type RecordingClient,
  startUpstream,
  waitFor,
} from './helpers/net.js';

interface Server {
  proxy: Supervisor;
  base: string;
  client: Toxiproxy;
  port: number;
  controls: StageControl[];
  closes: ConnectionInfo[];
}

/** startServer: listener `echo` in front of an echo upstream, its admin server, a Toxiproxy client. */
async function startServer(t: TestContext): Promise<Server> {
  const upstream = await startUpstream(t, echo);
  const controls: StageControl[] = [];
  const hooks: ConnectionHooks = { relaying: (control) => controls.push(control) };
  const proxy = createSupervisor({
    listeners: [
      {
        name: 'echo',
        listen: '127.0.0.1:0',
        targets: [upstream.address],
        ...{ [kConnectionHooks]: hooks },
      },
    ],
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const closes: ConnectionInfo[] = [];
  proxy.on('connectionClose', (info: ConnectionInfo) => closes.push(info));
  const server = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
  await server.listen();
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address()?.port}`;
  const client = new Toxiproxy(base);
  const port = proxy.addresses()['echo']?.port ?? 0;
  return { proxy, base, client, port, controls, closes };
}

/** roundTripMs writes `text` on an open echo connection and resolves with the ms until it is back. */
async function roundTripMs(client: RecordingClient, text: string): Promise<number> {
  const before = client.received().length;
  const start = performance.now();
  client.socket.write(text);
  await waitFor(() => client.received().length >= before + text.length, 5000, 'the echo');
  return performance.now() - start;
}

async function opened(port: number): Promise<RecordingClient> {
  const client = connectClient(port);
  await once(client.socket, 'connect');
  return client;
}

test('a latency toxic added over the API delays the echo by ≥ 200 ms; removing it brings it back under', async (t) => {
  const { client, port } = await startServer(t);
  const proxy = await client.get('echo');
  const toxic = await proxy.addToxic({
    type: 'latency',
    stream: 'downstream',
    attributes: { latency: 200 },
  } as never);
  const slow = await opened(port);
  t.after(() => slow.socket.destroy());
  assert.ok((await roundTripMs(slow, 'ping')) >= 200, 'the echo waited for the latency');
  await toxic.remove();
  const fast = await opened(port);
  t.after(() => fast.socket.destroy());
  assert.ok((await roundTripMs(fast, 'ping')) < 200, 'no latency once removed');
  assert.ok((await roundTripMs(slow, 'pong')) < 200, 'the open connection lost it too');
});

test('a toxic added while a connection is open acts on it (the first toxic attaches open connections)', async (t) => {
  const { proxy, client, port, controls } = await startServer(t);
  const open = await opened(port);
  t.after(() => open.socket.destroy());
  await roundTripMs(open, 'warm');
  assert.equal(proxy.toxicRegistry('echo')?.connectionCount, 0, 'not attached without toxics');
  await (await client.get('echo')).addToxic({
    name: 'slow',
    type: 'latency',
    attributes: { latency: 200 },
  } as never);
  assert.notEqual(controls[0]?.stageOf('downstream'), null, 'the open connection got a stage');
  assert.ok((await roundTripMs(open, 'ping')) >= 200, 'the open connection is delayed');
});

test('limit_data closes after exactly N bytes: cause toxic and the toxic’s name in the record', async (t) => {
  const { client, port, closes } = await startServer(t);
  await (await client.get('echo')).addToxic({
    name: 'cut',
    type: 'limit_data',
    attributes: { bytes: 10 },
  } as never);
  const conn = await opened(port);
  conn.socket.write('0123456789abcdefghij');
  t.after(() => conn.socket.destroy());
  await withTimeout(conn.ended, 5000, 'the close by limit_data');
  assert.equal(conn.received().toString(), '0123456789');
  await waitFor(() => closes.length === 1, 5000, 'the close record');
  assert.equal(closes[0]?.cause, 'toxic');
  assert.equal(closes[0]?.toxic, 'cut');
});

test('reset_peer resets the client (ECONNRESET)', async (t) => {
  const { client, port, closes } = await startServer(t);
  await (await client.get('echo')).addToxic({
    type: 'reset_peer',
    stream: 'upstream',
    attributes: { timeout: 0 },
  } as never);
  const conn = await opened(port);
  conn.socket.write('hello');
  assert.equal(await withTimeout(conn.closed, 5000, 'the reset'), 'ECONNRESET');
  await waitFor(() => closes.length === 1, 5000, 'the close record');
  assert.equal(closes[0]?.toxic, 'reset_peer_upstream');
});

test('toxicity 0 never acts; a plain listener relays with no stage and attaches nothing', async (t) => {
  const { proxy, client, port, controls } = await startServer(t);
  const plain = await opened(port);
  t.after(() => plain.socket.destroy());
  await roundTripMs(plain, 'ping');
  assert.equal(controls[0]?.stageOf('upstream'), null);
  assert.equal(controls[0]?.stageOf('downstream'), null);
  assert.equal(proxy.toxicRegistry('echo')?.connectionCount, 0);
  await (await client.get('echo')).addToxic({
    type: 'limit_data',
    toxicity: 0,
    attributes: { bytes: 0 },
  } as never);
  for (let i = 0; i < 5; i += 1) {
    const conn = await opened(port);
    t.after(() => conn.socket.destroy());
    await roundTripMs(conn, 'never cut');
    assert.equal(controls[i + 1]?.stageOf('downstream'), null, 'no stage for a toxic not drawn');
  }
  await roundTripMs(plain, 'still flowing');
});

test('/metrics: proxy_toxics{listener} counts the listener’s toxics', async (t) => {
  const { base, client } = await startServer(t);
  const gauge = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return text.split('\n').find((line) => line.startsWith('proxy_toxics{listener="echo"}'));
  };
  assert.equal(await gauge(), 'proxy_toxics{listener="echo"} 0');
  const proxy = await client.get('echo');
  await proxy.addToxic({ type: 'noop' } as never);
  await proxy.addToxic({ type: 'latency', stream: 'upstream' } as never);
  assert.equal(await gauge(), 'proxy_toxics{listener="echo"} 2');
});
