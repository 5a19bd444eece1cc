/**
 * The host-name cache in front of dns.lookup, with an injected resolver and clock,
 * plus one real connection through a target written as a name.
 */
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { test } from 'node:test';
import {
  createCachedLookup,
  FAILED_TTL_MS,
  RESOLVED_TTL_MS,
  type Resolve,
} from '../src/upstream/resolve.js';
import { connectClient, startProxy, startUpstream } from './helpers/net.js';

function fakeResolver(
  answer: () => { error: NodeJS.ErrnoException | null; addresses: LookupAddress[] },
) {
  const calls: string[] = [];
  const pending: (() => void)[] = [];
  const resolve: Resolve = (hostname, _options, callback) => {
    calls.push(hostname);
    const { error, addresses } = answer();
    pending.push(() => callback(error, addresses));
  };
  const settle = (): void => {
    for (const f of pending.splice(0)) f();
  };
  return { resolve, calls, settle };
}

function lookupOnce(lookup: ReturnType<typeof createCachedLookup>, host: string, all = false) {
  return new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }>(
    (resolve) => lookup(host, { all }, (err, address, family) => resolve({ err, address, family })),
  );
}

const ADDRESSES: LookupAddress[] = [
  { address: '10.1.2.3', family: 4 },
  { address: 'fd00::1', family: 6 },
];

test('resolves a name once and reuses the answer until the TTL has passed', async () => {
  let now = 0;
  const fake = fakeResolver(() => ({ error: null, addresses: ADDRESSES }));
  const lookup = createCachedLookup(fake.resolve, () => now);
  const first = lookupOnce(lookup, 'db.example');
  fake.settle();
  assert.deepEqual(await first, { err: null, address: '10.1.2.3', family: 4 });
  now = RESOLVED_TTL_MS - 1;
  assert.deepEqual((await lookupOnce(lookup, 'db.example', true)).address, ADDRESSES);
  assert.deepEqual(fake.calls, ['db.example']);
  now = RESOLVED_TTL_MS + 1;
  const again = lookupOnce(lookup, 'db.example');
  fake.settle();
  await again;
  assert.deepEqual(fake.calls, ['db.example', 'db.example']);
});

test('connections arriving during a lookup wait for it instead of starting their own', async () => {
  const fake = fakeResolver(() => ({ error: null, addresses: ADDRESSES }));
  const lookup = createCachedLookup(fake.resolve, () => 0);
  const waiting = [
    lookupOnce(lookup, 'a.example'),
    lookupOnce(lookup, 'a.example'),
    lookupOnce(lookup, 'a.example'),
  ];
  fake.settle();
  const answers = await Promise.all(waiting);
  assert.equal(fake.calls.length, 1);
  assert.ok(answers.every((a) => a.address === '10.1.2.3'));
});

test('remembers a failure only briefly', async () => {
  let now = 0;
  const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
  const fake = fakeResolver(() => ({ error: notFound, addresses: [] }));
  const lookup = createCachedLookup(fake.resolve, () => now);
  const first = lookupOnce(lookup, 'gone.example');
  fake.settle();
  assert.equal((await first).err?.code, 'ENOTFOUND');
  assert.equal((await lookupOnce(lookup, 'gone.example')).err?.code, 'ENOTFOUND');
  assert.equal(fake.calls.length, 1);
  now = FAILED_TTL_MS + 1;
  const retry = lookupOnce(lookup, 'gone.example');
  fake.settle();
  await retry;
  assert.equal(fake.calls.length, 2);
});

test('a target written as a host name works end to end', async (t) => {
  const upstream = await startUpstream(t, (s) => s.end('by name'));
  const { port } = await startProxy(t, { targets: [`localhost:${upstream.port}`] });
  for (let i = 0; i < 3; i++) {
    const client = connectClient(port);
    await client.ended;
    assert.equal(client.received().toString(), 'by name');
    client.socket.end();
  }
});
