/**
 * TLS termination against haproxy (issue #15): `tls1` and `tls1r` (one stream, client →
 * upstream and upstream → client, as bulk1 and bulk1r) and `tlshs` (full handshakes
 * per second: a new TLS connection for every 64-byte request and 1 KiB response, as
 * churn). The proxy runs with `--tls-cert/--tls-key`, haproxy with `bind ... ssl crt`
 * (bench/haproxy.ts), both in front of the same plain upstream, and the same Node.js
 * TLS client drives both: TLS 1.3 as both settle it, a P-256 certificate made with
 * openssl for this run, no session resumption (the client never offers a session).
 *
 * The machine is shared and noisy, so after one unmeasured warm-up pass each, the two
 * are measured in interleaved rounds (proxy, haproxy, then haproxy, proxy, ...: 5 full,
 * 3 with --quick, 1 with --smoke) and the table gives the medians; every round is in
 * the JSON file. Besides the rate, each row gives the CPU each of the two
 * spent per GB or per handshake, read from /proc: the fairer figure when the load
 * generator, which does its half of every handshake, shares the 2 cores.
 *
 * Without haproxy (`apt-get install haproxy`) only the proxy is measured, with a note.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type BulkResult, runStream } from './bulk.js';
import { haproxyVersion, startHaproxy } from './haproxy.js';
import { LOOPBACK, nowMs, type Row, type Scenario, type Settings, sleep } from './lib.js';
import { Agent, type ProxyProcess, startProxy, startServer } from './processes.js';
import {
  type LoadResult,
  LoadTally,
  type LoadWindow,
  REQUEST_BYTES,
  RESPONSE_BYTES,
} from './request-response.js';
import { cpuSince, cpuTimes } from './system.js';

const SERVERNAME = 'bench.l4proxy.test';
const HANDSHAKE_WORKERS = 32;
const ROUNDS: Record<Settings['mode'], number> = { full: 5, quick: 3, smoke: 1 };

/** TlsClientOptions: where to connect and what to trust (the run's certificate). */
export interface TlsClientOptions {
  port: number;
  ca: string;
}

/** TlsSeen is what a client saw of the handshakes it made: protocol, cipher, resumptions. */
export interface TlsSeen {
  version: string | null;
  cipher: string | null;
  resumed: number;
}

// Every connection starts as a full handshake: no `session` is ever passed in.
function connectTls(options: TlsClientOptions): TLSSocket {
  const socket = tlsConnect({
    host: LOOPBACK,
    port: options.port,
    servername: SERVERNAME,
    ca: options.ca,
  });
  socket.setNoDelay(true);
  return socket;
}

function openTls(options: TlsClientOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connectTls(options);
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** TlsBulkParams: one stream through a TLS terminator at `port`, one way, for `durationMs`. */
export interface TlsBulkParams extends TlsClientOptions {
  toUpstream: boolean;
  durationMs: number;
}

/** tlsBulkClient (agent role) runs one bulk stream over TLS (bulk.ts's protocol inside). */
export async function tlsBulkClient(params: TlsBulkParams): Promise<BulkResult & TlsSeen> {
  const socket = await openTls(params);
  const seen = {
    version: socket.getProtocol(),
    cipher: socket.getCipher().name,
    resumed: socket.isSessionReused() ? 1 : 0,
  };
  const timeout = setTimeout(
    () => socket.destroy(new Error('TLS bulk step timed out')),
    params.durationMs + 20_000,
  );
  try {
    return { ...(await runStream(socket, params.toUpstream, params.durationMs)), ...seen };
  } finally {
    clearTimeout(timeout);
  }
}

/** TlsHandshakeParams: `workers` loops of connect (full handshake), request, response, close. */
export interface TlsHandshakeParams extends TlsClientOptions, LoadWindow {
  workers: number;
}

/** tlsHandshakeClient (agent role) runs `workers` loops of one new TLS connection per request. */
export async function tlsHandshakeClient(
  params: TlsHandshakeParams,
): Promise<LoadResult & TlsSeen> {
  const request = Buffer.alloc(REQUEST_BYTES, 0x71);
  // A call that arrives late (a freshly started agent) starts its window on arrival.
  const tally = new LoadTally({ ...params, startAtMs: Math.max(params.startAtMs, nowMs()) });
  const seen: TlsSeen = { version: null, cipher: null, resumed: 0 };

  // One connection: resolves when it is over, however it ended.
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const startedAt = nowMs();
      let received = 0;
      let done = false;
      const socket = connectTls(params);
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        if (ok) tally.done(startedAt);
        else tally.errors += 1;
        socket.destroy();
        resolve();
      };
      socket.setTimeout(5000, () => finish(false));
      socket.once('secureConnect', () => {
        if (socket.isSessionReused()) seen.resumed += 1;
        seen.version = socket.getProtocol();
        seen.cipher = socket.getCipher().name;
        socket.write(request);
      });
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      socket.once('end', () => finish(received === RESPONSE_BYTES));
      socket.once('error', () => finish(false));
      socket.once('close', () => finish(false));
    });

  const worker = async (): Promise<void> => {
    await sleep(Math.max(0, tally.windowStart - params.warmupMs - nowMs()));
    // Bounded by time; the count bound only guards against a loop that never waits.
    for (let i = 0; i < 10_000_000 && nowMs() < tally.windowEnd; i++) await once();
  };
  await Promise.race([
    Promise.all(Array.from({ length: params.workers }, worker)),
    sleep(tally.windowEnd - nowMs() + 10_000),
  ]);
  return { ...tally.result(), ...seen };
}

// ---------------------------------------------------------------- the scenario

/** Certificate: the run's self-signed P-256 certificate, as PEM text and as haproxy's one file. */
interface Certificate {
  certPath: string;
  keyPath: string;
  /** pemPath holds the certificate then the key (haproxy's `crt`). */
  pemPath: string;
  cert: string;
}

function makeCertificate(dir: string): Certificate {
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const pemPath = join(dir, 'haproxy.pem');
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${SERVERNAME}`],
      ...['-addext', `subjectAltName=DNS:${SERVERNAME}`],
    ],
    { stdio: 'ignore', timeout: 20_000 },
  );
  const cert = readFileSync(certPath, 'utf8');
  writeFileSync(pemPath, cert + readFileSync(keyPath, 'utf8'));
  return { certPath, keyPath, pemPath, cert };
}

/** Sample is one measurement of one terminator: its rate and the CPU it spent per unit. */
interface Sample {
  rate: number;
  cpuPerUnit: number | null;
  seen: TlsSeen;
  errors: number;
}

/** Terminator is one of the two things measured: the proxy or haproxy, with a name. */
interface Terminator {
  name: 'proxy' | 'haproxy';
  process: ProxyProcess;
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? null)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

async function measureBulk(
  loader: Agent,
  on: Terminator,
  ca: string,
  toUpstream: boolean,
  settings: Settings,
): Promise<Sample> {
  const before = cpuTimes(on.process.pid);
  const params: TlsBulkParams = { port: on.process.port, ca, toUpstream, ...settings };
  const result = await loader.call<BulkResult & TlsSeen>('tlsBulkClient', params);
  const cpu = cpuSince(on.process.pid, before);
  const seconds = (result.lastMs - result.firstMs) / 1000;
  const cpuPerUnit = cpu === null ? null : (cpu.user + cpu.system) / (result.bytes / 1e9);
  return { rate: (result.bytes * 8) / seconds / 1e9, cpuPerUnit, seen: result, errors: 0 };
}

async function measureHandshakes(
  loader: Agent,
  on: Terminator,
  ca: string,
  settings: Settings,
): Promise<Sample> {
  const params: TlsHandshakeParams = {
    port: on.process.port,
    ca,
    workers: HANDSHAKE_WORKERS,
    startAtMs: nowMs() + 300, // time for the agent to get the call
    warmupMs: settings.warmupMs,
    durationMs: settings.durationMs,
  };
  const before = cpuTimes(on.process.pid);
  const result = await loader.call<LoadResult & TlsSeen>('tlsHandshakeClient', params);
  const cpu = cpuSince(on.process.pid, before);
  const cpuPerUnit =
    cpu === null || result.total === 0 ? null : ((cpu.user + cpu.system) * 1e6) / result.total;
  const rate = result.completed / (settings.durationMs / 1000);
  return { rate, cpuPerUnit, seen: result, errors: result.errors };
}

interface TlsStep {
  id: string;
  label: string;
  metric: string;
  digits: number;
  cpuUnit: string;
  cpuDigits: number;
  measure(loader: Agent, on: Terminator, ca: string, settings: Settings): Promise<Sample>;
}

const STEPS: readonly TlsStep[] = [
  {
    id: 'tls1',
    label: 'TLS termination, 1 stream, client → upstream',
    metric: 'Gbit/s',
    digits: 2,
    cpuUnit: 's/GB',
    cpuDigits: 2,
    measure: (loader, on, ca, settings) => measureBulk(loader, on, ca, true, settings),
  },
  {
    id: 'tls1r',
    label: 'TLS termination, 1 stream, upstream → client',
    metric: 'Gbit/s',
    digits: 2,
    cpuUnit: 's/GB',
    cpuDigits: 2,
    measure: (loader, on, ca, settings) => measureBulk(loader, on, ca, false, settings),
  },
  {
    id: 'tlshs',
    label: `TLS full handshakes, ${HANDSHAKE_WORKERS} conns, 1 request each`,
    metric: 'handshakes/s',
    digits: 0,
    cpuUnit: 'µs/handshake',
    cpuDigits: 0,
    measure: measureHandshakes,
  },
];

/** rowOf summarizes one step's rounds: medians of each, ratio proxy/haproxy in run.ts. */
function rowOf(step: TlsStep, samples: Record<Terminator['name'], Sample[]>): Row {
  const rate = (name: Terminator['name']) => median(samples[name].map((s) => s.rate));
  const cpu = (name: Terminator['name']) =>
    median(samples[name].flatMap((s) => (s.cpuPerUnit === null ? [] : [s.cpuPerUnit])));
  const ours = cpu('proxy');
  const theirs = cpu('haproxy');
  const cpuText =
    ours === null
      ? undefined
      : `${ours.toFixed(step.cpuDigits)} ${step.cpuUnit}` +
        (theirs === null ? '' : ` (haproxy ${theirs.toFixed(step.cpuDigits)})`);
  return {
    id: `${step.id}.${step.metric === 'Gbit/s' ? 'gbps' : 'hps'}`,
    scenario: step.label,
    metric: step.metric,
    direct: rate('haproxy'),
    proxy: rate('proxy'),
    digits: step.digits,
    proxyCpu: cpuText,
    baseline: 'haproxy',
    details: { cpu_unit: step.cpuUnit, proxy_cpu: ours, haproxy_cpu: theirs, rounds: samples },
  };
}

/** tls is the scenario: each step in interleaved rounds, the proxy and haproxy in turn. */
export const tls: Scenario = {
  ids: STEPS.map((s) => s.id),
  async run(settings, only, notes) {
    const steps = STEPS.filter((s) => only(s.id));
    if (steps.length === 0) return [];
    const version = haproxyVersion();
    if (version === null) {
      notes.push(
        'TLS: haproxy is not installed (`apt-get install haproxy`): measured the proxy alone.',
      );
    }
    const dir = mkdtempSync(join(tmpdir(), 'proxy-bench-tls-'));
    const started: { stop(): Promise<void> }[] = [];
    try {
      const certificate = makeCertificate(dir);
      const rows: Row[] = [];
      for (const step of steps) {
        // The load agent first: it starts while the others do. A fresh upstream and
        // terminators per step, as the other scenarios do.
        const loader = new Agent();
        started.push(loader);
        const upstream =
          step.id === 'tlshs'
            ? await startServer('rrServer', {
                requestBytes: REQUEST_BYTES,
                responseBytes: RESPONSE_BYTES,
                closeAfterResponse: true,
              })
            : await startServer('bulkServer', {});
        started.push(upstream.agent);
        const terminators: Terminator[] = [];
        const proxy = await startProxy(upstream.port, settings, [
          ...['--tls-cert', certificate.certPath, '--tls-key', certificate.keyPath],
        ]);
        started.push(proxy);
        terminators.push({ name: 'proxy', process: proxy });
        if (version !== null) {
          const haproxy = await startHaproxy(dir, upstream.port, certificate.pemPath);
          started.push(haproxy);
          terminators.push({ name: 'haproxy', process: haproxy });
        }
        // One unmeasured pass each first: the proxy's first TLS streams run before the JIT
        // has compiled its path (a first round measured about a quarter of the later ones).
        const warmup = { ...settings, durationMs: Math.min(settings.durationMs, 1000) };
        for (const on of terminators) await step.measure(loader, on, certificate.cert, warmup);
        const samples: Record<Terminator['name'], Sample[]> = { proxy: [], haproxy: [] };
        for (let round = 0; round < ROUNDS[settings.mode]; round++) {
          const order = round % 2 === 0 ? terminators : [...terminators].reverse();
          for (const on of order) {
            const sample = await step.measure(loader, on, certificate.cert, settings);
            samples[on.name].push(sample);
            if (sample.errors > 0 || sample.seen.resumed > 0) {
              notes.push(
                `${step.id} ${on.name}: ${sample.errors} failed connections, ${sample.seen.resumed} resumed sessions.`,
              );
            }
            // Let TIME_WAIT sockets and the other's teardown settle between runs.
            if (step.id === 'tlshs') await sleep(500);
          }
        }
        rows.push(rowOf(step, samples));
        const [ours, theirs] = [samples.proxy[0]?.seen, samples.haproxy[0]?.seen];
        if (ours !== undefined && theirs !== undefined && ours.cipher !== theirs.cipher) {
          notes.push(
            `${step.id}: the client settled ${ours.version} ${ours.cipher} with the proxy, ${theirs.version} ${theirs.cipher} with haproxy.`,
          );
        }
        await Promise.all(started.splice(0).map((p) => p.stop()));
      }
      const seen = rows[0]?.details?.['rounds'] as Record<string, Sample[]> | undefined;
      const facts = seen?.['proxy']?.[0]?.seen;
      notes.push(
        `TLS: the "haproxy" column is ${version ?? 'haproxy (not installed)'} with nbthread 1 and ` +
          '`bind ... ssl crt`, the same upstream and client; ' +
          `${ROUNDS[settings.mode]} interleaved round(s), medians; ` +
          `${facts?.version ?? '?'} ${facts?.cipher ?? '?'}, P-256 certificate, no resumption.`,
      );
      return rows;
    } finally {
      await Promise.all(started.map((p) => p.stop()));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
