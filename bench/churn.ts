/**
 * Connection churn (`churn`): a new TCP connection for every request, as the shared
 * kit's `wrk -H 'Connection: close'`. 64 workers (two agents of 32) each connect,
 * send a 64-byte request, read the 1 KiB response and the upstream's FIN, close, and
 * start over. Through the proxy every round trip also costs an accept, an upstream
 * connect and a proxy context's whole life. Figure: completed connections per second.
 *
 * Two agents, because that gives the stronger direct baseline on 2 cores (about 16.5k
 * against 14.5k conn/s with one); through the proxy one agent would do slightly better
 * (9k against 8k), so the ratio reported is the conservative one.
 */
import { connect as netConnect } from 'node:net';
import { runChurnLoops } from './churn-loop.js';
import { atLeast, LOOPBACK, type Row, ratio, type Scenario } from './lib.js';
import {
  cpuMicrosEach,
  type LoadResult,
  LoadTally,
  type LoadWindow,
  REQUEST_BYTES,
  RESPONSE_BYTES,
  runDirectThenProxied,
} from './request-response.js';

const WORKERS = 64;
const LOADERS = 2;

/** ChurnClientParams: `workers` connect-request-close loops against `port`. */
export interface ChurnClientParams extends LoadWindow {
  port: number;
  workers: number;
}

/** churnClient (agent role) runs `workers` loops of one connection per request. */
export async function churnClient(params: ChurnClientParams): Promise<LoadResult> {
  const request = Buffer.alloc(REQUEST_BYTES, 0x71);
  const tally = new LoadTally(params);
  await runChurnLoops({ tally, workers: params.workers, startAtMs: params.startAtMs }, () => ({
    socket: netConnect({ host: LOOPBACK, port: params.port, noDelay: true }),
    readyEvent: 'connect',
    request: () => request,
  }));
  return tally.result();
}

/** churn is the scenario: direct, then through the proxy, on one upstream. */
export const churn: Scenario = {
  ids: ['churn'],
  async run(settings, only, notes) {
    if (!only('churn')) return [];
    const { direct, viaProxy } = await runDirectThenProxied(
      {
        step: 'churn',
        upstream: {
          requestBytes: REQUEST_BYTES,
          responseBytes: RESPONSE_BYTES,
          closeAfterResponse: true,
        },
        role: 'churnClient',
        loaders: LOADERS,
        perLoader: { workers: WORKERS / LOADERS },
        // Let the direct run's TIME_WAIT sockets and upstream teardown settle first.
        settleMs: 500,
        failures: 'failed connections',
      },
      settings,
      notes,
    );
    const cpuUs = cpuMicrosEach(viaProxy);
    const row: Row = {
      id: 'churn.cps',
      scenario: 'churn: 1 connection per request',
      metric: 'conn/s',
      direct: direct.perSecond,
      proxy: viaProxy.perSecond,
      digits: 0,
      proxyCpu: cpuUs === null ? undefined : `${cpuUs.toFixed(1)} µs/conn`,
      goals: [atLeast('≥ 0.40× direct', ratio(direct.perSecond, viaProxy.perSecond), 0.4)],
      details: { direct, proxy: viaProxy, cpu_us_per_conn: cpuUs },
    };
    return [row];
  },
};
