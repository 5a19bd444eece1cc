/**
 * Request/response rate (`rr1k`): 64 keep-alive connections, each sending a 64-byte
 * request and waiting for a 1 KiB response before sending the next (a closed loop,
 * as `wrk -c64` against a 1 KiB file in the shared kit). Figures: requests per
 * second, and the p50/p99 latency from sending a request to the last byte of its
 * response, over a window that starts after a warm-up.
 *
 * The load generator is one agent process. Two agents of 32 connections (as
 * `wrk -t2`) were tried: on 2 cores both the direct and the proxied rate came out
 * lower (about 105k and 54k req/s against 150k and 62k), so one it is; `runLoad`
 * takes any number.
 *
 * The upstream answers every `requestBytes` received with `responseBytes`; with
 * `closeAfterResponse` it ends the connection after the first response (the churn
 * scenario uses that).
 */
import { createServer, connect as netConnect } from 'node:net';
import {
  atLeast,
  Histogram,
  LOOPBACK,
  nowMs,
  ratio,
  type Scenario,
  type Settings,
  sleep,
} from './lib.js';
import { Agent, listenOn, startProxy, startServer } from './processes.js';
import { type CpuTimes, cpuSince, cpuTimes, quietly } from './system.js';

/** REQUEST_BYTES and RESPONSE_BYTES are the sizes of one exchange. */
export const REQUEST_BYTES = 64;
export const RESPONSE_BYTES = 1024;

const CONNECTIONS = 64;
const LOADERS = 1;

/** RrServerParams: sizes of one exchange, and whether to close after the first response. */
export interface RrServerParams {
  requestBytes: number;
  responseBytes: number;
  closeAfterResponse: boolean;
}

/** rrServer (agent role) starts the request/response upstream and resolves with its port. */
export async function rrServer(params: RrServerParams): Promise<{ port: number }> {
  const response = Buffer.alloc(params.responseBytes, 0x72);
  const server = createServer({ noDelay: true }, (socket) => {
    let pending = 0;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.length;
      while (pending >= params.requestBytes) {
        pending -= params.requestBytes;
        if (params.closeAfterResponse) {
          socket.end(response);
          return;
        }
        socket.write(response);
      }
    });
  });
  return { port: await listenOn(server) };
}

/** LoadWindow is when a load generator starts, and which part of its run is counted. */
export interface LoadWindow {
  /** startAtMs is the wall-clock time (nowMs) at which every agent starts sending. */
  startAtMs: number;
  warmupMs: number;
  durationMs: number;
}

/** RrClientParams: `connections` keep-alive connections to `port`. */
export interface RrClientParams extends LoadWindow {
  port: number;
  connections: number;
}

/** LoadResult is what one load agent counted inside its window. */
export interface LoadResult {
  /** completed counts exchanges that finished inside the window; total counts all of them. */
  completed: number;
  total: number;
  errors: number;
  /** histogram counts of latencies in µs (see Histogram). */
  latency: number[];
}

/**
 * LoadTally is what a load agent counts: every exchange, and the latency of those that
 * end inside the window (after the warm-up, before the end).
 */
export class LoadTally {
  readonly histogram = new Histogram();
  readonly windowStart: number;
  readonly windowEnd: number;
  completed = 0;
  total = 0;
  errors = 0;

  constructor(window: LoadWindow) {
    this.windowStart = window.startAtMs + window.warmupMs;
    this.windowEnd = this.windowStart + window.durationMs;
  }

  /** done counts an exchange that began at `startedAt` and ended now; returns now. */
  done(startedAt: number): number {
    const t = nowMs();
    this.total += 1;
    if (t >= this.windowStart && t < this.windowEnd) {
      this.completed += 1;
      this.histogram.record((t - startedAt) * 1000);
    }
    return t;
  }

  /** result is the agent's answer. */
  result(): LoadResult {
    const { completed, total, errors } = this;
    return { completed, total, errors, latency: this.histogram.counts };
  }
}

/** rrClient (agent role) runs closed-loop request/response on keep-alive connections. */
export async function rrClient(params: RrClientParams): Promise<LoadResult> {
  const request = Buffer.alloc(REQUEST_BYTES, 0x71);
  const tally = new LoadTally(params);
  const windowEnd = tally.windowEnd;

  const runConnection = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = netConnect({ host: LOOPBACK, port: params.port, noDelay: true });
      let received = 0;
      let sentAt = 0;
      const send = (): void => {
        sentAt = nowMs();
        socket.write(request);
      };
      socket.on('error', () => {
        tally.errors += 1;
        resolve();
      });
      socket.on('close', () => resolve());
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        while (received >= RESPONSE_BYTES) {
          received -= RESPONSE_BYTES;
          if (tally.done(sentAt) >= windowEnd) {
            socket.destroy();
            return;
          }
          send();
        }
      });
      socket.once('connect', () => {
        setTimeout(send, Math.max(0, params.startAtMs - nowMs()));
      });
    });

  const connections = Array.from({ length: params.connections }, runConnection);
  // Bound: a connection stuck without a response is given up 10 s after the window.
  await Promise.race([Promise.all(connections), sleep(windowEnd - nowMs() + 10_000)]);
  return tally.result();
}

/** LoadFigures are several agents' results merged. */
export interface LoadFigures {
  perSecond: number;
  completed: number;
  /** total counts exchanges in the warm-up and the window: the work the proxy's CPU time paid for. */
  total: number;
  errors: number;
  p50Us: number | null;
  p99Us: number | null;
  /** cpu is the proxy's CPU time over the whole step (warm-up included), null direct. */
  cpu: CpuTimes | null;
}

/**
 * runLoad starts `role` on every loader at the same moment, each with `perLoader`
 * params, and merges what they counted; the proxy's CPU time is read around it.
 */
export async function runLoad(
  loaders: readonly Agent[],
  role: string,
  perLoader: object,
  settings: Settings,
  proxyPid: number | null,
): Promise<LoadFigures> {
  const window: LoadWindow = {
    startAtMs: nowMs() + 300, // time for every agent to get the call and connect
    warmupMs: settings.warmupMs,
    durationMs: settings.durationMs,
  };
  const cpuBefore = proxyPid === null ? null : cpuTimes(proxyPid);
  const results = await Promise.all(
    loaders.map((loader) => loader.call<LoadResult>(role, { ...perLoader, ...window })),
  );
  const cpu = cpuSince(proxyPid, cpuBefore);
  const histogram = new Histogram();
  let completed = 0;
  let total = 0;
  let errors = 0;
  for (const result of results) {
    histogram.merge(new Histogram(result.latency));
    completed += result.completed;
    total += result.total;
    errors += result.errors;
  }
  return {
    perSecond: completed / (settings.durationMs / 1000),
    completed,
    total,
    errors,
    p50Us: histogram.percentile(0.5),
    p99Us: histogram.percentile(0.99),
    cpu,
  };
}

/** cpuMicrosEach is the proxy's CPU µs per exchange (or connection) of a step, or null. */
export function cpuMicrosEach(figures: LoadFigures): number | null {
  const cpu = figures.cpu;
  if (cpu === null || figures.total === 0) return null;
  return ((cpu.user + cpu.system) * 1e6) / figures.total;
}

/** startLoaders starts `count` load agents. */
export function startLoaders(count: number): Agent[] {
  return Array.from({ length: count }, () => new Agent());
}

/** LoadStep is one load scenario run straight at an upstream, then through the proxy. */
export interface LoadStep {
  /** step names the scenario in notes ("rr1k", "churn"). */
  step: string;
  upstream: RrServerParams;
  /** role is the agent role that makes the load; perLoader its params besides the port. */
  role: string;
  loaders: number;
  perLoader: object;
  /** settleMs is a pause between the direct and the proxied run. */
  settleMs: number;
  /** failures names what an error count counts, for the note ("broken connections"). */
  failures: string;
}

/**
 * runDirectThenProxied starts the upstream, a proxy in front of it and the loaders,
 * measures the load straight at the upstream and then through the proxy (each step
 * measured again while the machine is busy, see `quietly`), notes any failures and
 * stops every process it started.
 */
export async function runDirectThenProxied(
  load: LoadStep,
  settings: Settings,
  notes: string[],
): Promise<{ direct: LoadFigures; viaProxy: LoadFigures }> {
  const upstream = await startServer('rrServer', load.upstream);
  const proxy = await startProxy(upstream.port, settings);
  const loaders = startLoaders(load.loaders);
  try {
    const run = (port: number, pid: number | null) => () =>
      runLoad(loaders, load.role, { ...load.perLoader, port }, settings, pid);
    const direct = await quietly(settings, `${load.step} direct`, notes, run(upstream.port, null));
    await sleep(load.settleMs);
    const viaProxy = await quietly(
      settings,
      `${load.step} proxy`,
      notes,
      run(proxy.port, proxy.pid),
    );
    if (direct.errors + viaProxy.errors > 0) {
      notes.push(
        `${load.step}: ${load.failures}: ${direct.errors} direct, ${viaProxy.errors} through the proxy.`,
      );
    }
    return { direct, viaProxy };
  } finally {
    await Promise.all([...loaders.map((l) => l.stop()), proxy.stop(), upstream.agent.stop()]);
  }
}

/** requestResponse is the scenario: direct, then through the proxy, on one upstream. */
export const requestResponse: Scenario = {
  ids: ['rr1k'],
  async run(settings, only, notes) {
    if (!only('rr1k')) return [];
    const { direct, viaProxy } = await runDirectThenProxied(
      {
        step: 'rr1k',
        upstream: {
          requestBytes: REQUEST_BYTES,
          responseBytes: RESPONSE_BYTES,
          closeAfterResponse: false,
        },
        role: 'rrClient',
        loaders: LOADERS,
        perLoader: { connections: CONNECTIONS / LOADERS },
        settleMs: 0,
        failures: 'broken connections',
      },
      settings,
      notes,
    );
    const cpuUs = cpuMicrosEach(viaProxy);
    const label = 'request/response 1 KiB, 64 conns';
    const details = { direct, proxy: viaProxy, cpu_us_per_req: cpuUs };
    return [
      {
        id: 'rr1k.rps',
        scenario: label,
        metric: 'req/s',
        direct: direct.perSecond,
        proxy: viaProxy.perSecond,
        digits: 0,
        proxyCpu: cpuUs === null ? undefined : `${cpuUs.toFixed(1)} µs/req`,
        goals: [atLeast('≥ 0.65× direct', ratio(direct.perSecond, viaProxy.perSecond), 0.65)],
        details,
      },
      {
        id: 'rr1k.p50_us',
        scenario: label,
        metric: 'p50 latency µs',
        direct: direct.p50Us,
        proxy: viaProxy.p50Us,
        digits: 0,
      },
      {
        id: 'rr1k.p99_us',
        scenario: label,
        metric: 'p99 latency µs',
        direct: direct.p99Us,
        proxy: viaProxy.p99Us,
        digits: 0,
      },
    ];
  },
};
