/**
 * The cost of a toxic on the data path (issue #12): one stream, upstream → client
 * (`tox1r`), and 1 KiB request/response on 64 connections (`toxrr`), each measured
 * direct, then through one proxy with no toxic, with a `noop` toxic and with a
 * `latency` toxic of 0 ms, in the same run.
 *
 * The toxics sit on the downstream stream (target → client), where the stream's bytes
 * and the responses flow. They are added and removed between steps through the
 * proxy's Toxiproxy API (`--admin`, so every variant, the plain one too, runs with the
 * admin server on); each step opens new connections, which take the toxics of the
 * moment.
 */
import type { BulkClientParams, BulkResult } from './bulk.js';
import { LOOPBACK, type Row, type Scenario, type Settings } from './lib.js';
import { Agent, freePort, type ProxyProcess, startProxy, startServer } from './processes.js';
import {
  cpuMicrosEach,
  type LoadFigures,
  REQUEST_BYTES,
  RESPONSE_BYTES,
  runLoad,
  startLoaders,
} from './request-response.js';
import { cpuSince, cpuTimes, quietly } from './system.js';

const RR_CONNECTIONS = 64;

/** A proxy variant: the toxic on its downstream stream, or none. */
interface Variant {
  id: string;
  label: string;
  toxic: { type: string; attributes?: Record<string, number> } | null;
}

const VARIANTS: readonly Variant[] = [
  { id: 'plain', label: 'no toxic', toxic: null },
  { id: 'noop', label: 'noop toxic', toxic: { type: 'noop' } },
  {
    id: 'latency0',
    label: 'latency 0 toxic',
    toxic: { type: 'latency', attributes: { latency: 0 } },
  },
];

const TOXIC_NAME = 'bench';

/** A proxy under test with its admin server, and the name of its one listener there. */
interface AdminProxy {
  proxy: ProxyProcess;
  admin: string;
  listener: string;
}

async function api(admin: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`http://${admin}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

async function startAdminProxy(targetPort: number, settings: Settings): Promise<AdminProxy> {
  const admin = `${LOOPBACK}:${await freePort()}`;
  // Our own --admin, so its port is known: not a second one from --admin on the command line.
  const proxy = await startProxy(targetPort, { ...settings, proxyAdmin: false }, [
    '--admin',
    admin,
  ]);
  try {
    const proxies = (await api(admin, 'GET', '/proxies')) as Record<string, unknown>;
    const listener = Object.keys(proxies)[0];
    if (listener === undefined) throw new Error(`GET http://${admin}/proxies listed no listener`);
    return { proxy, admin, listener };
  } catch (err) {
    await proxy.stop();
    throw err;
  }
}

/** withVariant runs `measure` with the variant's toxic in place, and removes it after. */
async function withVariant<T>(
  target: AdminProxy,
  variant: Variant,
  measure: () => Promise<T>,
): Promise<T> {
  if (variant.toxic === null) return measure();
  const toxics = `/proxies/${encodeURIComponent(target.listener)}/toxics`;
  await api(target.admin, 'POST', toxics, {
    name: TOXIC_NAME,
    stream: 'downstream',
    ...variant.toxic,
  });
  try {
    return await measure();
  } finally {
    await api(target.admin, 'DELETE', `${toxics}/${TOXIC_NAME}`);
  }
}

interface StreamFigures {
  gbps: number;
  cpuSecondsPerGB: number | null;
}

async function oneStream(
  loader: Agent,
  port: number,
  settings: Settings,
  proxyPid: number | null,
): Promise<StreamFigures> {
  const before = proxyPid === null ? null : cpuTimes(proxyPid);
  const result = await loader.call<BulkResult>('bulkClient', {
    port,
    streams: 1,
    toUpstream: false,
    durationMs: settings.durationMs,
  } satisfies BulkClientParams);
  const cpu = cpuSince(proxyPid, before);
  const seconds = (result.lastMs - result.firstMs) / 1000;
  return {
    gbps: (result.bytes * 8) / seconds / 1e9,
    cpuSecondsPerGB: cpu === null ? null : (cpu.user + cpu.system) / (result.bytes / 1e9),
  };
}

async function streamRows(settings: Settings, notes: string[]): Promise<Row[]> {
  const upstream = await startServer('bulkServer', {});
  const loader = new Agent();
  const stops: Array<() => Promise<void>> = [() => loader.stop(), () => upstream.agent.stop()];
  try {
    const target = await startAdminProxy(upstream.port, settings);
    stops.push(() => target.proxy.stop());
    const direct = await quietly(settings, 'tox1r direct', notes, () =>
      oneStream(loader, upstream.port, settings, null),
    );
    const rows: Row[] = [];
    for (const variant of VARIANTS) {
      const figures = await quietly(settings, `tox1r ${variant.id}`, notes, () =>
        withVariant(target, variant, () =>
          oneStream(loader, target.proxy.port, settings, target.proxy.pid),
        ),
      );
      rows.push({
        id: `tox1r.${variant.id}.gbps`,
        scenario: `1 stream, upstream → client, ${variant.label}`,
        metric: 'Gbit/s',
        direct: direct.gbps,
        proxy: figures.gbps,
        digits: 2,
        proxyCpu:
          figures.cpuSecondsPerGB === null
            ? undefined
            : `${figures.cpuSecondsPerGB.toFixed(2)} s/GB`,
        details: { cpu_s_per_gb: figures.cpuSecondsPerGB },
      });
    }
    return rows;
  } finally {
    await Promise.all(stops.map((stop) => stop()));
  }
}

async function requestRows(settings: Settings, notes: string[]): Promise<Row[]> {
  const upstream = await startServer('rrServer', {
    requestBytes: REQUEST_BYTES,
    responseBytes: RESPONSE_BYTES,
    closeAfterResponse: false,
  });
  const loaders = startLoaders(1);
  const stops: Array<() => Promise<void>> = [
    ...loaders.map((l) => () => l.stop()),
    () => upstream.agent.stop(),
  ];
  try {
    const target = await startAdminProxy(upstream.port, settings);
    stops.push(() => target.proxy.stop());
    const load = (port: number, pid: number | null) => () =>
      runLoad(loaders, 'rrClient', { connections: RR_CONNECTIONS, port }, settings, pid);
    const direct = await quietly(settings, 'toxrr direct', notes, load(upstream.port, null));
    const rows: Row[] = [];
    for (const variant of VARIANTS) {
      const figures: LoadFigures = await quietly(settings, `toxrr ${variant.id}`, notes, () =>
        withVariant(target, variant, load(target.proxy.port, target.proxy.pid)),
      );
      if (direct.errors + figures.errors > 0) {
        notes.push(
          `toxrr ${variant.id}: broken connections: ${direct.errors} direct, ${figures.errors} through the proxy.`,
        );
      }
      const cpuUs = cpuMicrosEach(figures);
      const scenario = `request/response 1 KiB, 64 conns, ${variant.label}`;
      rows.push(
        {
          id: `toxrr.${variant.id}.rps`,
          scenario,
          metric: 'req/s',
          direct: direct.perSecond,
          proxy: figures.perSecond,
          digits: 0,
          proxyCpu: cpuUs === null ? undefined : `${cpuUs.toFixed(1)} µs/req`,
          details: { direct, proxy: figures, cpu_us_per_req: cpuUs },
        },
        {
          id: `toxrr.${variant.id}.p99_us`,
          scenario,
          metric: 'p99 latency µs',
          direct: direct.p99Us,
          proxy: figures.p99Us,
          digits: 0,
        },
      );
    }
    return rows;
  } finally {
    await Promise.all(stops.map((stop) => stop()));
  }
}

/** toxics is the scenario: `tox1r` (one stream) and `toxrr` (1 KiB requests), each with every variant. */
export const toxics: Scenario = {
  ids: ['tox1r', 'toxrr'],
  async run(settings, only, notes) {
    const rows: Row[] = [];
    if (only('tox1r')) rows.push(...(await streamRows(settings, notes)));
    if (only('toxrr')) rows.push(...(await requestRows(settings, notes)));
    return rows;
  },
};
