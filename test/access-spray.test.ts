/**
 * Memory stays bounded under a spray of source addresses (issue #13): a million
 * distinct addresses through one AccessControl's per-address tables (the open
 * connection count and the rate limiter's buckets), on an injected clock, and a few
 * thousand real connections from 127.0.x.y addresses through a proxy. The tables stay
 * under their bounds, idle entries expire, and an abusive address inside the spray is
 * still limited.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AccessControl } from '../src/access/access-control.js';
import { parseRate } from '../src/access/rate-limit.js';
import { admissionHooks } from '../src/admission.js';
import { kConnectionHooks } from '../src/handshake.js';
import type { ConnectionInfo } from '../src/index.js';
import { startProxy, startUpstream, waitFor } from './helpers/net.js';

/** sprayAddress: the i-th of a million distinct addresses: IPv4, IPv4-mapped IPv6 and IPv6 in turn. */
function sprayAddress(i: number): string {
  const v4 = `${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  switch (i % 3) {
    case 0:
      return `10.${v4}`;
    case 1:
      return `::ffff:11.${v4}`;
    default:
      return `2001:db8::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`;
  }
}

/** collectGarbage: a full GC, so that heap sizes compare live objects only. */
function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

test('a spray of a million source addresses keeps both per-address tables bounded; idle entries expire; an abusive address is still limited', () => {
  const gc = collectGarbage();
  let now = 0;
  const MAX_RATE_ENTRIES = 10_000;
  const OPEN = 500; // connections open at once: each is closed 500 admissions later
  const access = new AccessControl(
    { maxConnectionsPerIp: 2, connectionRatePerIp: parseRate('5/1s') },
    { now: () => now, maxRateEntries: MAX_RATE_ENTRIES },
  );
  const open: (string | null)[] = new Array<string | null>(OPEN).fill(null);
  const HOT = '203.0.113.66';
  let hotAllowed = 0;
  let hotTried = 0;
  let largestCount = 0;
  let largestRate = 0;
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1_000_000; i++) {
    if (i % 100 === 0) {
      now += 1; // 100 000 new connections a second
      // One abusive client among them, one connection a millisecond, each closed at once.
      const hot = access.admit(HOT);
      hotTried += 1;
      if (hot.allowed) {
        hotAllowed += 1;
        if (hot.key !== null) access.release(hot.key);
      }
    }
    const admission = access.admit(sprayAddress(i));
    if (!admission.allowed) assert.fail(`${sprayAddress(i)} is new, yet ${admission.cause}`);
    const slot = i % OPEN;
    const closing = open[slot];
    if (closing !== null && closing !== undefined) access.release(closing);
    open[slot] = admission.key;
    if (access.countEntries > largestCount) largestCount = access.countEntries;
    if (access.rateEntries > largestRate) largestRate = access.rateEntries;
  }
  gc();
  const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(largestCount <= OPEN, `${largestCount} addresses counted, ${OPEN} open at most`);
  assert.ok(largestRate <= MAX_RATE_ENTRIES, `${largestRate} rate buckets`);
  // A million entries would take well over 100 MB; the bounded tables a few MB.
  assert.ok(heapGrowth < 32 * 1024 * 1024, `the heap grew by ${heapGrowth} bytes`);
  // 5 at once, then 5 a second over the 10 s of the spray: the spray did not reset its bucket.
  const elapsedS = now / 1000;
  assert.ok(hotAllowed <= 5 + Math.ceil(elapsedS * 5), `${hotAllowed} of ${hotTried} allowed`);
  assert.ok(hotAllowed >= 5, `${hotAllowed} allowed`);

  for (const key of open) if (key !== null) access.release(key);
  assert.equal(access.countEntries, 0, 'no open connection, no entry');
  now += 2000; // 2·DUR idle: every bucket was full again, so forgotten
  assert.ok(access.admit('192.0.2.1').allowed);
  assert.equal(access.rateEntries, 1);
});

/** withHooks: the listener option that carries the admission hooks of `access` (a symbol key: no public option). */
function withHooks(access: AccessControl): object {
  return { [kConnectionHooks]: admissionHooks({ access }) };
}

test('a few thousand real clients from 127.0.x.y: every new address is admitted, the tables stay bounded and empty out', async (t) => {
  const upstream = await startUpstream(t, (socket) => {
    socket.resume();
    socket.on('end', () => socket.end());
  });
  const MAX_RATE_ENTRIES = 1000;
  const access = new AccessControl(
    { maxConnectionsPerIp: 1, connectionRatePerIp: parseRate('2/1m') },
    { maxRateEntries: MAX_RATE_ENTRIES },
  );
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    log: { level: 'error' },
    ...withHooks(access),
  });
  const closed: ConnectionInfo[] = [];
  proxy.on('connectionClose', (info) => closed.push(info));
  const addresses: string[] = [];
  for (let a = 1; a <= 8; a++) for (let b = 1; b <= 250; b++) addresses.push(`127.0.${a}.${b}`);
  let largestRate = 0;
  const BATCH = 100;
  for (let i = 0; i < addresses.length; i += BATCH) {
    const batch = addresses.slice(i, i + BATCH).map(async (from) => {
      const socket = connect({ port, host: '127.0.0.1', localAddress: from });
      socket.on('error', () => {});
      socket.resume();
      await once(socket, 'connect');
      socket.end('x');
      await once(socket, 'close');
    });
    await Promise.all(batch);
    largestRate = Math.max(largestRate, access.rateEntries);
  }
  await waitFor(() => closed.length === addresses.length, 10_000, 'every connection to close');
  const causes = new Set(closed.map((info) => info.cause));
  assert.deepEqual([...causes], ['client_fin'], 'none was refused');
  assert.ok(largestRate <= MAX_RATE_ENTRIES, `${largestRate} rate buckets`);
  assert.equal(access.countEntries, 0, 'every counted connection was counted off');
  // The limits still hold for an address seen just now: 2 a minute.
  const last = addresses.at(-1) as string;
  assert.equal(access.admit(last).allowed, true);
  assert.equal(access.admit(last).allowed, false);
});
