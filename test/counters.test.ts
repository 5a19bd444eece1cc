/**
 * Honest counters: `bytes_to_client` and `bytes_to_upstream` are bytes delivered
 * (accepted by the kernel for that socket), not bytes read from the other side. A
 * client that stops reading makes the proxy hold a pending write; a non-graceful
 * close then cuts it, and every view (the access record, the event, stats(), the
 * admin API, /metrics) must report what the client can actually still receive.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { AdminServer, type ConnectionInfo, createProxy, type TcpProxy } from '../src/index.js';
import { startUpstream, waitFor } from './helpers/net.js';

const CHUNK = Buffer.alloc(1024 * 1024, 7);
/** More than every kernel buffer on the way can hold, so the proxy ends up holding bytes. */
const PAYLOAD_CHUNKS = 128;

/** pump writes PAYLOAD_CHUNKS chunks to `socket`, waiting for 'drain' as it goes. */
function pump(socket: Socket): void {
  let sent = 0;
  const more = (): void => {
    while (sent < PAYLOAD_CHUNKS && !socket.destroyed) {
      sent += 1;
      if (!socket.write(CHUNK)) {
        socket.once('drain', more);
        return;
      }
    }
  };
  more();
}

type Record = { [key: string]: unknown; msg: string };

interface Stalled {
  proxy: TcpProxy;
  client: Socket;
  lines: string[];
  closed: ConnectionInfo[];
}

/**
 * stalledTransfer: an upstream sends more than the kernel buffers hold to a client
 * that reads nothing, until the proxy holds a pending write to the client.
 */
async function stalledTransfer(t: TestContext, listen: string): Promise<Stalled> {
  const upstream = await startUpstream(t, pump);
  const lines: string[] = [];
  const proxy = createProxy({
    listen,
    targets: [upstream.address],
    log: { level: 'info', format: 'json', write: (line) => lines.push(line) },
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const closed: ConnectionInfo[] = [];
  proxy.on('connectionClose', (info) => closed.push(info));
  const path = listen.startsWith('unix:') ? listen.slice('unix:'.length) : undefined;
  const client =
    path === undefined
      ? netConnect({ host: '127.0.0.1', port: proxy.address().port })
      : netConnect({ path });
  client.pause(); // the slow reader: not a byte is read until the proxy is closed
  client.on('error', () => {});
  t.after(() => client.destroy());
  await waitFor(
    () => (proxy.connections()[0]?.buffered ?? 0) > 0,
    20_000,
    'the proxy to hold bytes for the client',
  );
  return { proxy, client, lines, closed };
}

/** readAll resumes `client` and counts what it receives until the proxy's FIN. */
async function readAll(client: Socket): Promise<number> {
  let received = 0;
  client.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  client.resume();
  await once(client, 'close');
  return received;
}

async function assertDeliveredAtShutdown(t: TestContext, listen: string): Promise<void> {
  const { proxy, client, lines, closed } = await stalledTransfer(t, listen);
  const live = proxy.connections()[0];
  assert.ok(live !== undefined);
  assert.ok(
    live.bytesFromUpstream > live.bytesToClient,
    `read ${live.bytesFromUpstream} > delivered ${live.bytesToClient} while the client stalls`,
  );

  await proxy.close({ graceful: false });
  const received = await readAll(client);

  const info = closed[0];
  assert.ok(info !== undefined, 'connectionClose was emitted');
  assert.equal(info.cause, 'shutdown');
  // Read but never delivered: the pending write the close cut short.
  assert.ok(info.bytesFromUpstream > info.bytesToClient, JSON.stringify(info));
  // The kernel keeps and sends what it accepted before the close (a FIN, not a reset).
  assert.equal(received, info.bytesToClient, 'the client got exactly bytes_to_client');

  const record = lines
    .map((l) => JSON.parse(l) as Record)
    .find((r) => r.msg === 'connection closed');
  assert.ok(record !== undefined);
  assert.equal(record['bytes_to_client'], received);
  assert.equal(record['bytes_from_upstream'], info.bytesFromUpstream);
  assert.equal(proxy.stats().bytesToClient, received);
}

test('bytes_to_client is what a slow client received when a shutdown cut the transfer (TCP)', async (t) => {
  await assertDeliveredAtShutdown(t, '127.0.0.1:0');
});

test('bytes_to_client is what a slow client received when a shutdown cut the transfer (Unix socket)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'proxy-counters-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await assertDeliveredAtShutdown(t, `unix:${join(dir, 'proxy.sock')}`);
});

test('stats(), /api/connections, /api/listeners and /metrics count delivered bytes of open connections', async (t) => {
  const { proxy } = await stalledTransfer(t, '127.0.0.1:0');
  const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
  await admin.listen();
  t.after(() => admin.close());
  const base = `http://127.0.0.1:${admin.address()?.port}`;

  const live = proxy.connections()[0];
  assert.ok(live !== undefined);
  // The stalled connection moves no more bytes, but take every view before and after
  // one reading of the connection and require that reading to be the same.
  const stats = proxy.stats();
  const [connections, listeners, metrics] = await Promise.all([
    fetch(`${base}/api/connections`).then((r) => r.json() as Promise<Record[]>),
    fetch(`${base}/api/listeners`).then((r) => r.json() as Promise<Record[]>),
    fetch(`${base}/metrics`).then((r) => r.text()),
  ]);
  const after = proxy.connections()[0];
  assert.ok(after !== undefined);
  assert.equal(after.bytesToClient, live.bytesToClient, 'a stalled connection delivers nothing');
  const delivered = live.bytesToClient;
  assert.ok(live.bytesFromUpstream > delivered);

  assert.equal(stats.bytesToClient, delivered);
  assert.equal(connections[0]?.['bytes_to_client'], delivered);
  assert.equal(connections[0]?.['bytes_from_upstream'], after.bytesFromUpstream);
  assert.equal(listeners[0]?.['bytes_to_client'], delivered);
  const sample = /^proxy_bytes_total\{[^}]*direction="to_client"[^}]*\} (\d+)$/m.exec(metrics);
  assert.equal(Number(sample?.[1]), delivered);
});
