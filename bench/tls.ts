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
import type { BulkResult } from './bulk.js';
import { haproxyVersion, startHaproxy } from './haproxy.js';
import { nowMs, type Row, type Scenario, type Settings, sleep } from './lib.js';
import { Agent, type ProxyProcess, startProxy, startServer } from './processes.js';
import { type LoadResult, REQUEST_BYTES, RESPONSE_BYTES } from './request-response.js';
import { cpuSince, cpuTimes } from './system.js';
import {
  SERVERNAME,
  type TlsBulkParams,
  type TlsHandshakeParams,
  type TlsSeen,
} from './tls-clients.js';

const HANDSHAKE_WORKERS = 32;
const ROUNDS: Record<Settings['mode'], number> = { full: 5, quick: 3, smoke: 1 };

/** Certificate: the run's self-signed P-256 certificate, as PEM text and as haproxy's one file. */
interface Certificate {
  /** dir is the run's temporary directory (haproxy's configuration goes there too). */
  dir: string;
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
  return { dir, certPath, keyPath, pemPath, cert };
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

/** startUpstream starts the plain upstream a step needs (bulk.ts's or request-response.ts's). */
function startUpstream(step: TlsStep): Promise<{ agent: Agent; port: number }> {
  if (step.id !== 'tlshs') return startServer('bulkServer', {});
  const params = { requestBytes: REQUEST_BYTES, responseBytes: RESPONSE_BYTES };
  return startServer('rrServer', { ...params, closeAfterResponse: true });
}

/**
 * interleave measures `terminators` in turn, one unmeasured warm-up pass each, then
 * ROUNDS rounds in alternating order; it notes failed connections and resumed sessions.
 */
async function interleave(
  step: TlsStep,
  loader: Agent,
  terminators: readonly Terminator[],
  ca: string,
  settings: Settings,
  notes: string[],
): Promise<Record<Terminator['name'], Sample[]>> {
  // The proxy's first TLS streams run before the JIT has compiled its path (a first
  // round measured about a quarter of the later ones).
  const warmup = { ...settings, durationMs: Math.min(settings.durationMs, 1000) };
  for (const on of terminators) await step.measure(loader, on, ca, warmup);
  const samples: Record<Terminator['name'], Sample[]> = { proxy: [], haproxy: [] };
  for (let round = 0; round < ROUNDS[settings.mode]; round++) {
    const order = round % 2 === 0 ? terminators : [...terminators].reverse();
    for (const on of order) {
      const sample = await step.measure(loader, on, ca, settings);
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
  const [ours, theirs] = [samples.proxy[0]?.seen, samples.haproxy[0]?.seen];
  if (ours !== undefined && theirs !== undefined && ours.cipher !== theirs.cipher) {
    notes.push(
      `${step.id}: the client settled ${ours.version} ${ours.cipher} with the proxy, ${theirs.version} ${theirs.cipher} with haproxy.`,
    );
  }
  return samples;
}

/** runStep starts a step's load agent, upstream, proxy and haproxy, measures, and stops them. */
async function runStep(
  step: TlsStep,
  certificate: Certificate,
  withHaproxy: boolean,
  settings: Settings,
  notes: string[],
): Promise<Row> {
  const started: { stop(): Promise<void> }[] = [];
  try {
    // The load agent first: it starts while the others do.
    const loader = new Agent();
    started.push(loader);
    const upstream = await startUpstream(step);
    started.push(upstream.agent);
    const proxy = await startProxy(upstream.port, settings, [
      ...['--tls-cert', certificate.certPath, '--tls-key', certificate.keyPath],
    ]);
    started.push(proxy);
    const terminators: Terminator[] = [{ name: 'proxy', process: proxy }];
    if (withHaproxy) {
      const haproxy = await startHaproxy(certificate.dir, upstream.port, certificate.pemPath);
      started.push(haproxy);
      terminators.push({ name: 'haproxy', process: haproxy });
    }
    const samples = await interleave(step, loader, terminators, certificate.cert, settings, notes);
    return rowOf(step, samples);
  } finally {
    await Promise.all(started.map((p) => p.stop()));
  }
}

/** tls is the scenario: each step with a fresh upstream, proxy and haproxy, as the others do. */
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
    try {
      const certificate = makeCertificate(dir);
      const rows: Row[] = [];
      for (const step of steps) {
        rows.push(await runStep(step, certificate, version !== null, settings, notes));
      }
      const rounds = rows[0]?.details?.['rounds'] as Record<string, Sample[]> | undefined;
      const facts = rounds?.['proxy']?.[0]?.seen;
      notes.push(
        `TLS: the "haproxy" column is ${version ?? 'haproxy (not installed)'} with nbthread 1 and ` +
          '`bind ... ssl crt`, the same upstream and client; ' +
          `${ROUNDS[settings.mode]} interleaved round(s), medians; ` +
          `${facts?.version ?? '?'} ${facts?.cipher ?? '?'}, P-256 certificate, no resumption.`,
      );
      return rows;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
