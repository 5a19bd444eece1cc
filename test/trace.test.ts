/**
 * Trace mode: every event of a connection, in the words of the design, in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectClient, startProxy, startUpstream, waitFor } from './helpers/net.js';

test('trace logs the life of a connection step by step, tagged with its id', async (t) => {
  const lines: { msg: string; id?: string; side?: string }[] = [];
  const upstream = await startUpstream(t, (s) => {
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end());
  });
  const { port } = await startProxy(t, {
    targets: [upstream.address],
    idleTimeoutMs: 60_000,
    log: { level: 'trace', format: 'json', write: (line) => lines.push(JSON.parse(line)) },
  });
  const client = connectClient(port);
  // Sent once connected: bytes sent while connecting are held, then written together.
  await waitFor(() => lines.some((l) => l.msg.startsWith('connected to')), 5000, 'connected');
  client.socket.write('ping');
  await waitFor(() => client.received().length === 4, 5000, 'echo');
  client.socket.end();
  await client.ended;
  await waitFor(() => lines.some((l) => l.msg === 'connection closed'), 5000, 'closed');
  const events = lines.filter((l) => l.id !== undefined && l.msg !== 'connection closed');
  const id = events[0]?.id;
  assert.ok(
    events.every((e) => e.id === id),
    'every line carries the connection id',
  );
  const expected = [
    /^accepted 127\.0\.0\.1:\d+ on /,
    /^connecting to 127\.0\.0\.1:\d+ \(attempt 1\)$/,
    /^timer armed: connect timeout in 10000 ms$/,
    /^timer cancelled: connect timeout$/,
    /^connected to 127\.0\.0\.1:\d+ after \d+ ms$/,
    /^timer armed: idle timeout, 60000 ms without bytes$/,
    /^read 4 bytes from client$/,
    /^wrote 4 bytes to upstream$/,
    /^read 4 bytes from upstream$/,
    /^wrote 4 bytes to client$/,
    /^FIN received from client$/,
    /^shut write side of upstream \(FIN after buffered bytes\)$/,
    /^FIN received from upstream$/,
    /^shut write side of client \(FIN after buffered bytes\)$/,
    /^closed: client_fin$/,
  ];
  assert.deepEqual(
    events.map((e, i) => (expected[i]?.test(e.msg) ? 'ok' : e.msg)),
    expected.map(() => 'ok'),
  );
});

test('below trace level, no trace line is written', async (t) => {
  const lines: string[] = [];
  const upstream = await startUpstream(t, (s) => s.end('x'));
  const { port } = await startProxy(t, {
    targets: [upstream.address],
    log: { level: 'debug', format: 'json', write: (line) => lines.push(line) },
  });
  const client = connectClient(port);
  await client.ended;
  client.socket.end();
  await waitFor(() => lines.some((l) => l.includes('connection closed')), 5000, 'closed');
  assert.ok(lines.every((l) => !l.includes('"level":"trace"')));
});
