/**
 * The cost of admitting a connection (`admission`): new connections per second and the
 * proxy's CPU time per connection under the churn load (connect, a 64-byte request, the
 * 1 KiB response and the upstream's FIN, close; 64 workers in two agents), through one
 * proxy per variant, all in the same run:
 *
 *   plain     no admission setting: the plain path
 *   lists     `--allow` and `--deny` with 1000 CIDRs between them (the clients pass)
 *   limits    `--max-connections-per-ip` and `--connection-rate-per-ip` (never reached)
 *   proxy-v2  `--accept-proxy`; every client sends a PROXY v2 header before its request
 *
 * and, with `--baseline-cli FILE` (another build's dist/cli.js, e.g. main's), `plain`
 * through that build too, so the plain path of two builds is compared in one run.
 *
 * The variants are measured in turn (A B C D A B C D ...), `ROUNDS` rounds, and the
 * table gives each one's median: other load on the machine hits every variant alike.
 * The "direct" column is this build's plain proxy, so the ratio is the variant's cost.
 * The clients connect from 250 loopback addresses (127.0.1.x) in turn, so the
 * per-address tables hold more than one entry; each v2 header carries a new source.
 */
import { connect as netConnect } from 'node:net';
import { proxyHeaderFields } from '../src/proxy-protocol/preface.js';
import { encodeV2 } from '../src/proxy-protocol/v2.js';
import { runChurnLoops } from './churn-loop.js';
import { LOOPBACK, type Row, type Scenario, type Settings, sleep } from './lib.js';
import { type ProxyProcess, startProxy, startServer } from './processes.js';
import {
  cpuMicrosEach,
  type LoadFigures,
  type LoadResult,
  LoadTally,
  type LoadWindow,
  REQUEST_BYTES,
  RESPONSE_BYTES,
  runLoad,
  startLoaders,
} from './request-response.js';

const WORKERS = 64;
const LOADERS = 2;
const SOURCES = 250;
const ROUNDS: Record<Settings['mode'], number> = { full: 5, quick: 3, smoke: 1 };

/** cidrList: 500 denied and 499 allowed ranges no client is in, then 127.0.0.0/8 (allowed) last. */
function cidrList(): string[] {
  const args: string[] = [];
  for (let i = 0; i < 500; i++) {
    const range =
      i % 2 === 0 ? `100.${64 + (i >> 8)}.${i & 255}.0/24` : `2001:db8:${i.toString(16)}::/48`;
    args.push('--deny', range);
  }
  for (let i = 0; i < 499; i++) args.push('--allow', `172.${16 + (i >> 8)}.${i & 255}.0/24`);
  args.push('--allow', '127.0.0.0/8');
  return args;
}

interface Variant {
  id: string;
  label: string;
  args: readonly string[];
  proxyHeader: boolean;
  /** cli: another build's dist/cli.js (the baseline); undefined: this build. */
  cli?: string;
}

function variants(settings: Settings): Variant[] {
  const list: Variant[] = [
    { id: 'plain', label: 'plain (no admission setting)', args: [], proxyHeader: false },
    { id: 'lists', label: '--allow/--deny, 1000 CIDRs', args: cidrList(), proxyHeader: false },
    {
      id: 'limits',
      label: '--max-connections-per-ip, --connection-rate-per-ip',
      args: ['--max-connections-per-ip', '1000', '--connection-rate-per-ip', '100000000/1s'],
      proxyHeader: false,
    },
    {
      id: 'proxy_v2',
      label: '--accept-proxy, v2 headers',
      args: ['--accept-proxy'],
      proxyHeader: true,
    },
  ];
  if (settings.baselineCli !== null) {
    list.push({
      id: 'plain_baseline',
      label: 'plain, through the baseline build',
      args: [],
      proxyHeader: false,
      cli: settings.baselineCli,
    });
  }
  return list;
}

/** AdmissionClientParams: churn workers from `sources` loopback addresses, with or without a v2 header. */
export interface AdmissionClientParams extends LoadWindow {
  port: number;
  workers: number;
  sources: number;
  proxyHeader: boolean;
}

/** admissionClient (agent role): the churn loop, each connection from the next 127.0.1.x, header first if asked. */
export async function admissionClient(params: AdmissionClientParams): Promise<LoadResult> {
  const request = Buffer.alloc(REQUEST_BYTES, 0x71);
  const tally = new LoadTally(params);
  let next = Math.floor(Math.random() * 2 ** 24);

  const first = (): Buffer => {
    if (!params.proxyHeader) return request;
    next += 1;
    const source = `10.${(next >> 16) & 255}.${(next >> 8) & 255}.${next & 255}`;
    const fields = proxyHeaderFields(
      { address: source, port: 1024 + (next % 60_000) },
      { address: LOOPBACK, port: params.port },
    );
    return Buffer.concat([encodeV2(fields), request]);
  };

  // Each connection comes from the next of the `sources` addresses, from a random first one.
  const firstSource = Math.floor(Math.random() * params.sources);
  await runChurnLoops({ tally, workers: params.workers, startAtMs: params.startAtMs }, (n) => {
    const localAddress = `127.0.1.${1 + ((firstSource + n) % params.sources)}`;
    return {
      socket: netConnect({ host: LOOPBACK, port: params.port, localAddress, noDelay: true }),
      readyEvent: 'connect',
      request: first,
    };
  });
  return tally.result();
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

interface Measured {
  variant: Variant;
  rates: number[];
  cpuUs: number[];
  errors: number;
}

async function measureAll(settings: Settings, notes: string[]): Promise<Measured[]> {
  const upstream = await startServer('rrServer', {
    requestBytes: REQUEST_BYTES,
    responseBytes: RESPONSE_BYTES,
    closeAfterResponse: true,
  });
  const chosen = variants(settings);
  const proxies: ProxyProcess[] = [];
  const loaders = startLoaders(LOADERS);
  try {
    for (const variant of chosen) {
      proxies.push(await startProxy(upstream.port, settings, variant.args, variant.cli));
    }
    const measured = chosen.map(
      (variant) => ({ variant, rates: [], cpuUs: [], errors: 0 }) as Measured,
    );
    for (let round = 0; round < ROUNDS[settings.mode]; round++) {
      for (const [i, entry] of measured.entries()) {
        const proxy = proxies[i] as ProxyProcess;
        const perLoader = {
          workers: WORKERS / LOADERS,
          sources: SOURCES,
          proxyHeader: entry.variant.proxyHeader,
          port: proxy.port,
        };
        const figures: LoadFigures = await runLoad(
          loaders,
          'admissionClient',
          perLoader,
          settings,
          proxy.pid,
        );
        entry.rates.push(figures.perSecond);
        const cpu = cpuMicrosEach(figures);
        if (cpu !== null) entry.cpuUs.push(cpu);
        entry.errors += figures.errors;
        process.stderr.write(
          `[bench] admission round ${round + 1} ${entry.variant.id}: ${figures.perSecond.toFixed(0)} conn/s, ${cpu?.toFixed(1) ?? '?'} µs/conn\n`,
        );
        // Let the TIME_WAIT sockets and the upstream's teardown settle before the next.
        await sleep(300);
      }
    }
    for (const entry of measured) {
      if (entry.errors > 0)
        notes.push(`admission ${entry.variant.id}: ${entry.errors} failed connections.`);
    }
    notes.push(
      `admission: ${ROUNDS[settings.mode]} interleaved rounds, medians; "direct" is this build's plain proxy.`,
    );
    return measured;
  } finally {
    await Promise.all([
      ...loaders.map((l) => l.stop()),
      ...proxies.map((p) => p.stop()),
      upstream.agent.stop(),
    ]);
  }
}

/** admission is the scenario: each variant's conn/s and CPU per connection against the plain proxy. */
export const admission: Scenario = {
  ids: ['admission'],
  async run(settings, only, notes) {
    if (!only('admission')) return [];
    const measured = await measureAll(settings, notes);
    const plain = median(measured[0]?.rates ?? []);
    return measured.map((entry) => {
      const rate = median(entry.rates);
      const cpu = median(entry.cpuUs);
      return {
        id: `admission.${entry.variant.id}`,
        scenario: `churn, ${entry.variant.label}`,
        metric: 'conn/s',
        direct: plain,
        proxy: rate,
        digits: 0,
        proxyCpu: cpu === null ? undefined : `${cpu.toFixed(1)} µs/conn`,
        details: { rates: entry.rates, cpu_us_per_conn: entry.cpuUs, errors: entry.errors },
      } satisfies Row;
    });
  },
};
