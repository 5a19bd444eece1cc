/**
 * Memory per idle connection (`idle`): N connections (5000; 500 with --quick) are
 * opened 100 at a time and each is proven to reach the upstream by a 1-byte echo.
 * After a short settle the RSS of the process under test is read, then every
 * connection is proven alive again by a second echo. Figure: RSS growth from before
 * the first connection to after the last, divided by the connections alive, in KiB.
 *
 * The process under test is warmed up first by 50 connections opened, echoed and
 * closed, so the one-time cost of compiling the code that serves a connection is not
 * spread over N. (The shared kit gets the same effect by running its 16 MiB echo
 * check on the same proxy process just before its idle test.)
 *
 * Through the proxy the process read is the proxy (two sockets and a proxy context
 * per connection). Direct, it is the upstream echo server itself: what one plain
 * Node.js socket costs, for scale.
 *
 * File descriptors: the proxy needs two per connection. Nothing is raised here; when
 * `ulimit -n` is too low for N, N is reduced and the run says so.
 */
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { atMost, LOOPBACK, nowMs, type Row, type Scenario, sleep } from './lib.js';
import { Agent, listenOn, startProxy, startServer } from './processes.js';
import { rssKiB, softFileLimit } from './system.js';

const CONCURRENCY = 100;
const WARMUP = 50;
const ECHO_TIMEOUT_MS = 10_000;

/** holdServer (agent role) starts an upstream that echoes what it gets and otherwise holds. */
export async function holdServer(): Promise<{ port: number }> {
  const server = createServer({ noDelay: true }, (socket) => {
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
    socket.on('error', () => {});
  });
  return { port: await listenOn(server) };
}

/** IdleClientParams: open `n` connections to `port`; read the memory of process `pid`. */
export interface IdleClientParams {
  port: number;
  n: number;
  pid: number;
  settleMs: number;
}

/** IdleResult: connections opened and proven twice, and the process's RSS before and after. */
export interface IdleResult {
  n: number;
  established: number;
  alive: number;
  errors: Record<string, number>;
  establishMs: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
}

// Sends one byte on `socket` and resolves true when a byte comes back.
function echo(socket: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    const onData = (): void => finish(true);
    const onGone = (): void => finish(false);
    const timer = setTimeout(onGone, ECHO_TIMEOUT_MS);
    function finish(ok: boolean): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onGone);
      resolve(ok);
    }
    socket.once('data', onData);
    socket.once('close', onGone);
    socket.write('p');
  });
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: LOOPBACK, port, noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

// Runs `task(i)` for i in [0, count), `limit` at a time.
async function inBatches(
  count: number,
  limit: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
}

/** idleClient (agent role) opens, proves and holds the connections, and reads `pid`'s memory. */
export async function idleClient(params: IdleClientParams): Promise<IdleResult> {
  const errors: Record<string, number> = {};
  const fail = (why: string): void => {
    errors[why] = (errors[why] ?? 0) + 1;
  };
  const openProven = async (sockets: Socket[], count: number): Promise<void> => {
    await inBatches(count, CONCURRENCY, async () => {
      try {
        const socket = await open(params.port);
        socket.on('error', () => {});
        if (await echo(socket)) sockets.push(socket);
        else {
          fail('no echo');
          socket.destroy();
        }
      } catch (err) {
        fail((err as NodeJS.ErrnoException).code ?? String(err));
      }
    });
  };
  // Warm-up: one round of WARMUP connections, opened, echoed and closed, so that the
  // figure is the cost of a connection and not of compiling the code that serves it.
  const warmup: Socket[] = [];
  await openProven(warmup, Math.min(WARMUP, params.n));
  for (const socket of warmup) socket.destroy();
  await sleep(200);
  for (const key of Object.keys(errors)) delete errors[key];

  const rssBeforeKiB = rssKiB(params.pid);
  const sockets: Socket[] = [];
  const t0 = nowMs();
  await openProven(sockets, params.n);
  const establishMs = nowMs() - t0;
  await sleep(params.settleMs);
  const rssAfterKiB = rssKiB(params.pid);
  let alive = 0;
  await inBatches(sockets.length, 500, async (i) => {
    const socket = sockets[i];
    if (socket !== undefined && (await echo(socket))) alive += 1;
  });
  for (const socket of sockets) socket.destroy();
  return {
    n: params.n,
    established: sockets.length,
    alive,
    errors,
    establishMs,
    rssBeforeKiB,
    rssAfterKiB,
  };
}

function perConnection(result: IdleResult): number | null {
  return result.alive === 0 ? null : (result.rssAfterKiB - result.rssBeforeKiB) / result.alive;
}

/** idle is the scenario: the upstream's own memory direct, then the proxy's. */
export const idle: Scenario = {
  ids: ['idle'],
  async run(settings, only, notes) {
    if (!only('idle')) return [];
    let n = settings.idleConnections;
    // The proxy needs 2 descriptors per connection, plus a few of its own.
    const fit = Math.floor((softFileLimit() - 200) / 2);
    if (fit < n) {
      notes.push(
        `idle: ulimit -n is ${softFileLimit()}, so ${fit} connections instead of ${n} (not raised).`,
      );
      n = Math.max(0, fit);
    }
    const settleMs = settings.mode === 'full' ? 1000 : 300;
    const upstream = await startServer('holdServer', {});
    const loader = new Agent();
    try {
      const direct = await loader.call<IdleResult>('idleClient', {
        port: upstream.port,
        n,
        pid: upstream.agent.pid,
        settleMs,
      } satisfies IdleClientParams);
      await sleep(300); // let the upstream see the direct connections close
      const proxy = await startProxy(upstream.port, settings);
      let viaProxy: IdleResult;
      try {
        viaProxy = await loader.call<IdleResult>('idleClient', {
          port: proxy.port,
          n,
          pid: proxy.pid,
          settleMs,
        } satisfies IdleClientParams);
      } finally {
        await proxy.stop();
      }
      for (const [name, result] of [
        ['direct', direct],
        ['proxy', viaProxy],
      ] as const) {
        if (result.alive < n) {
          notes.push(
            `idle (${name}): ${result.alive} of ${n} connections alive at the end; errors ${JSON.stringify(result.errors)}.`,
          );
        }
      }
      const kib = perConnection(viaProxy);
      const row: Row = {
        id: 'idle.kib_per_conn',
        scenario: `idle: ${n} connections, ${viaProxy.alive} proven alive`,
        metric: 'RSS KiB/conn',
        direct: perConnection(direct),
        proxy: kib,
        digits: 1,
        goals: [
          n >= 5000
            ? atMost('≤ 8 KiB at 5000', kib, 8)
            : { text: `≤ 8 KiB at 5000 (not judged at ${n})`, met: null },
          { text: 'all alive', met: viaProxy.alive === n },
        ],
        details: { direct, proxy: viaProxy },
      };
      return [row];
    } finally {
      await Promise.all([loader.stop(), upstream.agent.stop()]);
    }
  },
};
