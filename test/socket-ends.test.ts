import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import type { ListenerConfig } from '../src/config/config.js';
import { describeClient, peerName } from '../src/socket-ends.js';
import { withTimeout } from './helpers/cli.js';

// An accepted socket and the client's own, on 127.0.0.1 (or ::1).
async function acceptedPair(t: { after(fn: () => void): void }, host: string) {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect(address.port, host);
  const [socket] = await withTimeout(accepted, 5000, 'accept');
  await withTimeout(once(client, 'connect'), 5000, 'connect');
  t.after(() => {
    client.destroy();
    socket.destroy();
    server.close();
  });
  return { socket, client };
}

const tcp = { listen: { host: '127.0.0.1', port: 0 } } as unknown as ListenerConfig;

test('peerName gives the client address and port without adding a property to the socket', async (t) => {
  const { socket, client } = await acceptedPair(t, '127.0.0.1');
  const before = Reflect.ownKeys(socket).length;
  const peer = peerName(socket);
  assert.deepEqual([peer.address, peer.port], ['127.0.0.1', client.localPort]);
  // Node's remoteAddress would have added `_peername` (a new hidden class per socket).
  assert.equal(Reflect.ownKeys(socket).length, before);
  assert.ok(!Object.hasOwn(socket, '_peername'));
  assert.equal(describeClient(peer, tcp), `127.0.0.1:${client.localPort}`);
  // Each answer is the caller's own: a second socket's does not change the first's.
  const second = await acceptedPair(t, '127.0.0.1');
  assert.equal(peerName(second.socket).port, second.client.localPort);
  assert.equal(peer.port, client.localPort);
});

test('describeClient spells an IPv6 client in brackets, a Unix client and a vanished one', async (t) => {
  const { socket, client } = await acceptedPair(t, '::1').catch((err: unknown) => {
    t.skip(`no IPv6 loopback: ${String(err)}`);
    return { socket: null, client: null };
  });
  if (socket !== null && client !== null)
    assert.equal(describeClient(peerName(socket), tcp), `[::1]:${client.localPort}`);
  const unix = { listen: { path: '/tmp/x.sock' } } as unknown as ListenerConfig;
  assert.equal(describeClient({}, unix), 'unix');
  assert.equal(describeClient({}, tcp), 'unknown');
});
