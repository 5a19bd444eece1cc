/**
 * Bulk throughput: one stream and eight, each way (`bulk1`, `bulk1r`, `bulk8`,
 * `bulk8r`, as the shared kit names them), and the proxy's CPU seconds per GB.
 *
 * How a stream is measured: the sender writes 128 KiB chunks as fast as the socket
 * takes them for the step's duration, then ends (FIN). The receiver counts bytes
 * from its first byte to that FIN, so bytes still buffered anywhere on the way are
 * counted when they arrive, not when they were written. Client → upstream, the
 * upstream is the receiver and answers the FIN with its count (one JSON line) and its
 * own FIN; upstream → client, the client is the receiver. Either way the proxy also
 * carries a half-close, as real transfers end.
 *
 * A stream opens with a 5-byte header: 'U' (client sends) or 'D' (upstream sends),
 * then the duration in ms (uint32, big-endian).
 */
import { createServer, connect as netConnect, type Socket } from 'node:net';
import {
  atLeast,
  atMost,
  LOOPBACK,
  nowMs,
  type Row,
  ratio,
  type Scenario,
  type Settings,
} from './lib.js';
import { Agent, listenOn, startProxy, startServer } from './processes.js';
import { type CpuTimes, cpuSince, cpuTimes, quietly } from './system.js';

const CHUNK = Buffer.alloc(128 * 1024, 0x78);
const HEADER_BYTES = 5;
const UPLOAD = 0x55; // 'U'
const DOWNLOAD = 0x44; // 'D'

/** BulkResult is what the receiver(s) counted; times are wall-clock ms (nowMs). */
export interface BulkResult {
  bytes: number;
  firstMs: number;
  lastMs: number;
}

// Write CHUNK until `untilMs` or until the socket is gone, then call done().
function pump(socket: Socket, untilMs: number, done: () => void): void {
  const step = (): void => {
    while (!socket.destroyed) {
      if (nowMs() >= untilMs) {
        done();
        return;
      }
      if (!socket.write(CHUNK)) {
        socket.once('drain', step);
        return;
      }
    }
  };
  step();
}

function bulkServerOnConnection(socket: Socket): void {
  let header: Buffer = Buffer.alloc(0);
  let mode = 0;
  let bytes = 0;
  let firstMs = 0;
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    if (mode === 0) {
      header = Buffer.concat([header, chunk]);
      if (header.length < HEADER_BYTES) return;
      mode = header[0] ?? 0;
      if (mode === DOWNLOAD) {
        pump(socket, nowMs() + header.readUInt32BE(1), () => socket.end());
        return;
      }
      chunk = header.subarray(HEADER_BYTES);
      if (chunk.length === 0) return;
    }
    if (bytes === 0) firstMs = nowMs();
    bytes += chunk.length;
  });
  socket.on('end', () => {
    if (mode !== UPLOAD) return;
    const result: BulkResult = { bytes, firstMs, lastMs: nowMs() };
    socket.end(`${JSON.stringify(result)}\n`);
  });
}

/** bulkServer (agent role) starts the bulk upstream and resolves with its port. */
export async function bulkServer(): Promise<{ port: number }> {
  const server = createServer({ noDelay: true, allowHalfOpen: true }, bulkServerOnConnection);
  return { port: await listenOn(server) };
}

/** BulkClientParams: `streams` connections to `port`, each sending or receiving for `durationMs`. */
export interface BulkClientParams {
  port: number;
  streams: number;
  toUpstream: boolean;
  durationMs: number;
}

function openStream(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: LOOPBACK, port, noDelay: true, allowHalfOpen: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * runStream runs one stream's transfer on a connected `socket` (plain or TLS) and
 * resolves with what its receiver counted; it destroys the socket at the end.
 */
export function runStream(
  socket: Socket,
  toUpstream: boolean,
  durationMs: number,
): Promise<BulkResult> {
  return new Promise((resolve, reject) => {
    const header = Buffer.alloc(HEADER_BYTES);
    header[0] = toUpstream ? UPLOAD : DOWNLOAD;
    header.writeUInt32BE(durationMs, 1);
    let bytes = 0;
    let firstMs = 0;
    let reply = '';
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      if (toUpstream) {
        reply += chunk.toString('utf8');
        return;
      }
      if (bytes === 0) firstMs = nowMs();
      bytes += chunk.length;
    });
    socket.on('end', () => {
      socket.destroy();
      try {
        resolve(
          toUpstream ? (JSON.parse(reply) as BulkResult) : { bytes, firstMs, lastMs: nowMs() },
        );
      } catch {
        reject(new Error(`bad reply from the bulk upstream: ${reply.slice(0, 80)}`));
      }
    });
    socket.write(header);
    if (toUpstream) pump(socket, nowMs() + durationMs, () => socket.end());
  });
}

/** bulkClient (agent role) runs one bulk step and resolves with the receivers' totals. */
export async function bulkClient(params: BulkClientParams): Promise<BulkResult> {
  const sockets = await Promise.all(
    Array.from({ length: params.streams }, () => openStream(params.port)),
  );
  const timeout = setTimeout(() => {
    for (const socket of sockets) socket.destroy(new Error('bulk step timed out'));
  }, params.durationMs + 20_000);
  try {
    const results = await Promise.all(
      sockets.map((socket) => runStream(socket, params.toUpstream, params.durationMs)),
    );
    return {
      bytes: results.reduce((sum, r) => sum + r.bytes, 0),
      firstMs: Math.min(...results.map((r) => r.firstMs)),
      lastMs: Math.max(...results.map((r) => r.lastMs)),
    };
  } finally {
    clearTimeout(timeout);
  }
}

interface BulkStep {
  id: string;
  label: string;
  streams: number;
  toUpstream: boolean;
}

const STEPS: readonly BulkStep[] = [
  { id: 'bulk1', label: 'bulk, 1 stream, client → upstream', streams: 1, toUpstream: true },
  { id: 'bulk1r', label: 'bulk, 1 stream, upstream → client', streams: 1, toUpstream: false },
  { id: 'bulk8', label: 'bulk, 8 streams, client → upstream', streams: 8, toUpstream: true },
  { id: 'bulk8r', label: 'bulk, 8 streams, upstream → client', streams: 8, toUpstream: false },
];

interface Measured {
  gbps: number;
  bytes: number;
  cpu: CpuTimes | null;
}

async function measure(
  loader: Agent,
  port: number,
  step: BulkStep,
  settings: Settings,
  proxyPid: number | null,
): Promise<Measured> {
  const cpuBefore = proxyPid === null ? null : cpuTimes(proxyPid);
  const result = await loader.call<BulkResult>('bulkClient', {
    port,
    streams: step.streams,
    toUpstream: step.toUpstream,
    durationMs: settings.durationMs,
  } satisfies BulkClientParams);
  const cpu = cpuSince(proxyPid, cpuBefore);
  const seconds = (result.lastMs - result.firstMs) / 1000;
  return { gbps: (result.bytes * 8) / seconds / 1e9, bytes: result.bytes, cpu };
}

/** bulk is the scenario: for each step, direct then through the proxy, on one upstream. */
export const bulk: Scenario = {
  ids: STEPS.map((s) => s.id),
  async run(settings, only, notes) {
    const steps = STEPS.filter((s) => only(s.id));
    if (steps.length === 0) return [];
    const upstream = await startServer('bulkServer', {});
    const proxy = await startProxy(upstream.port, settings);
    const loader = new Agent();
    const rows: Row[] = [];
    try {
      for (const step of steps) {
        const direct = await quietly(settings, `${step.id} direct`, notes, () =>
          measure(loader, upstream.port, step, settings, null),
        );
        const viaProxy = await quietly(settings, `${step.id} proxy`, notes, () =>
          measure(loader, proxy.port, step, settings, proxy.pid),
        );
        const cpu = viaProxy.cpu;
        const cpuPerGB = cpu === null ? null : (cpu.user + cpu.system) / (viaProxy.bytes / 1e9);
        const r = ratio(direct.gbps, viaProxy.gbps);
        const goals = [atMost('CPU ≤ 0.4 s/GB', cpuPerGB, 0.4)];
        if (step.id === 'bulk1') goals.unshift(atLeast('≥ 0.70× direct', r, 0.7));
        rows.push({
          id: `${step.id}.gbps`,
          scenario: step.label,
          metric: 'Gbit/s',
          direct: direct.gbps,
          proxy: viaProxy.gbps,
          digits: 2,
          proxyCpu: cpuPerGB === null ? undefined : `${cpuPerGB.toFixed(2)} s/GB`,
          goals,
          details: {
            cpu_s_per_gb: cpuPerGB,
            cpu_user_s: cpu?.user,
            cpu_system_s: cpu?.system,
            direct_bytes: direct.bytes,
            proxy_bytes: viaProxy.bytes,
          },
        });
      }
    } finally {
      await Promise.all([loader.stop(), proxy.stop(), upstream.agent.stop()]);
    }
    return rows;
  },
};
