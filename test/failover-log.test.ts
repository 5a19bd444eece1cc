/**
 * Failover shows in the logs: the access record says how many targets were tried and
 * why each failed, and the `no target reachable` warning says when every target is
 * drained instead of listing nothing.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { type ConnectionInfo, createProxy, type ListenerOptions } from '../src/index.js';
import { connectClient, echo, refusedTarget, startUpstream, waitFor } from './helpers/net.js';

type Record = { [key: string]: unknown; msg: string };

/** loggedProxy starts a proxy whose JSON log lines the test can read. */
async function loggedProxy(t: TestContext, options: ListenerOptions) {
  const lines: string[] = [];
  const proxy = createProxy({
    ...options,
    log: { level: 'info', format: 'json', write: (line) => lines.push(line) },
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const closed: ConnectionInfo[] = [];
  proxy.on('connectionClose', (info) => closed.push(info));
  const records = (): Record[] => lines.map((l) => JSON.parse(l) as Record);
  const record = async (msg: string): Promise<Record> => {
    await waitFor(() => records().some((r) => r.msg === msg), 5000, `a "${msg}" record`);
    return records().find((r) => r.msg === msg) as Record;
  };
  return { proxy, closed, records, record };
}

test('a connection that failed over names the refused target and the attempts in its access record', async (t) => {
  const refused = await refusedTarget();
  const upstream = await startUpstream(t, echo);
  // The first connection starts at the first target: the refused one, then the good one.
  const { proxy, closed, record } = await loggedProxy(t, {
    listen: '127.0.0.1:0',
    targets: [refused, upstream.address],
  });
  const client = connectClient(proxy.address().port);
  client.socket.end('hello');
  t.after(() => client.socket.destroy());
  const access = await record('connection closed');
  assert.equal(access['upstream'], upstream.address);
  assert.equal(access['attempts'], 2);
  assert.equal(access['connect_failures'], `${refused} ECONNREFUSED`);
  assert.equal(access['error'], undefined, 'the failure of the first target did not end it');
  const info = closed[0];
  assert.equal(info?.attempts, 2);
  assert.deepEqual(info?.connectFailures, [{ upstream: refused, code: 'ECONNREFUSED' }]);
});

test('a connection that reached its first target logs no failover fields', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { proxy, closed, record } = await loggedProxy(t, {
    listen: '127.0.0.1:0',
    targets: [upstream.address],
  });
  const client = connectClient(proxy.address().port);
  client.socket.end('hello');
  t.after(() => client.socket.destroy());
  const access = await record('connection closed');
  assert.ok(!('attempts' in access) && !('connect_failures' in access), JSON.stringify(access));
  assert.equal(closed[0]?.attempts, 1);
  assert.deepEqual(closed[0]?.connectFailures, []);
});

test('every target refused: the warning and the access record list each target with its error', async (t) => {
  const a = await refusedTarget();
  const b = await refusedTarget();
  const { proxy, record } = await loggedProxy(t, { listen: '127.0.0.1:0', targets: [a, b] });
  const client = connectClient(proxy.address().port);
  t.after(() => client.socket.destroy());
  const warning = await record('no target reachable');
  assert.equal(warning['tried'], `${a} ECONNREFUSED, ${b} ECONNREFUSED`);
  const access = await record('connection closed');
  assert.equal(access['cause'], 'connect_refused');
  assert.equal(access['attempts'], 2);
  assert.equal(access['connect_failures'], `${a} ECONNREFUSED, ${b} ECONNREFUSED`);
});

test('every target drained: the warning says so and names them, and nothing was attempted', async (t) => {
  const a = await startUpstream(t, echo);
  const b = await startUpstream(t, echo);
  const { proxy, records, record } = await loggedProxy(t, {
    name: 'web',
    listen: '127.0.0.1:0',
    targets: [a.address, b.address],
  });
  proxy.setTargetDrained('web', a.address, true);
  proxy.setTargetDrained('web', b.address, true);
  const client = connectClient(proxy.address().port);
  t.after(() => client.socket.destroy());
  const warning = await record('no target reachable: every target is drained');
  assert.ok(!('tried' in warning), JSON.stringify(warning));
  assert.equal(warning['drained'], `${a.address}, ${b.address}`);
  assert.ok(!records().some((r) => r.msg === 'no target reachable'));
  const access = await record('connection closed');
  assert.equal(access['cause'], 'no_target');
  assert.equal(access['attempts'], 0);
  assert.equal(a.sockets.length + b.sockets.length, 0);
});
