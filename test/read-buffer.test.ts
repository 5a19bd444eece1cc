/**
 * The pool of large read buffers (src/read-buffer.ts): a bounded number lent at once
 * in the whole process, however many connections read in bulk (docs/design.md §6, §7).
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { test } from 'node:test';
import {
  borrowLarge,
  giveBackLarge,
  LARGE_BYTES,
  largeBuffersLent,
  MAX_LARGE_LENT,
  SMALL_BYTES,
} from '../src/read-buffer.js';
import { connectClient, patternBytes, startProxy, startUpstream, waitFor } from './helpers/net.js';

test('the pool lends at most MAX_LARGE_LENT large buffers at once, each to one borrower', () => {
  const before = largeBuffersLent();
  const lent: Buffer[] = [];
  for (let b = borrowLarge(); b !== null; b = borrowLarge()) {
    lent.push(b);
    assert.ok(lent.length <= MAX_LARGE_LENT, 'more lent than the cap');
  }
  assert.equal(largeBuffersLent(), MAX_LARGE_LENT);
  assert.equal(lent.length, MAX_LARGE_LENT - before);
  assert.ok(lent.every((b) => b.length === LARGE_BYTES));
  assert.equal(new Set(lent).size, lent.length, 'no buffer lent twice');
  // One given back can be lent again, and only one.
  giveBackLarge(lent.pop() as Buffer);
  const again = borrowLarge();
  assert.ok(again !== null);
  lent.push(again);
  assert.equal(borrowLarge(), null);
  for (const b of lent) giveBackLarge(b);
  assert.equal(largeBuffersLent(), before);
});

test('more slow readers than the pool has buffers: bounded memory, every byte delivered', async (t) => {
  // Each upstream sends BYTES at once; no client reads until the proxy is stalled.
  const CONNECTIONS = MAX_LARGE_LENT + 6;
  const BYTES = 4 * 1024 * 1024;
  const payload = patternBytes(BYTES, 7);
  const upstream = await startUpstream(t, (socket) => socket.write(payload));
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  let maxLent = 0;
  const sampler = setInterval(() => {
    maxLent = Math.max(maxLent, largeBuffersLent());
  }, 1);
  t.after(() => clearInterval(sampler));
  const clients = Array.from({ length: CONNECTIONS }, () => {
    const client = connectClient(port);
    client.socket.pause();
    return client;
  });
  await waitFor(() => upstream.sockets.length === CONNECTIONS, 10_000, 'every upstream connection');
  // Stalled: the proxy has read nothing more for 250 ms.
  let last = -1;
  let still = 0;
  for (let i = 0; i < 400 && still < 5; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const read = proxy.stats().bytesToClient;
    still = read === last ? still + 1 : 0;
    last = read;
  }
  assert.ok(maxLent <= MAX_LARGE_LENT, `${maxLent} large buffers lent at once`);
  assert.equal(maxLent, MAX_LARGE_LENT, 'the connections used up the pool');
  const hwm = new Socket().writableHighWaterMark;
  const bound =
    MAX_LARGE_LENT * (LARGE_BYTES + hwm) + (CONNECTIONS - MAX_LARGE_LENT) * (SMALL_BYTES + hwm);
  const buffered = proxy.connections().reduce((sum, c) => sum + c.buffered, 0);
  assert.ok(buffered <= bound, `the proxy holds ${buffered} bytes (bound ${bound})`);
  // The readers wake up: every byte arrives, in order, on every connection.
  let received = 0;
  for (const client of clients) {
    client.socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    client.socket.resume();
  }
  await waitFor(() => received === CONNECTIONS * BYTES, 30_000, 'every byte');
  for (const client of clients) assert.ok(client.received().equals(payload));
  // An endpoint keeps its large buffer until a small read or until its socket closes
  // (docs/design.md §7): once the connections are closed, every buffer is back.
  for (const client of clients) client.socket.destroy();
  for (const socket of upstream.sockets) socket.destroy();
  await waitFor(() => proxy.connections().length === 0, 5000, 'every connection closed');
  assert.equal(largeBuffersLent(), 0, 'every large buffer given back');
});
