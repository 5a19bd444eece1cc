/**
 * The admission decisions alone, per connection, in this process (`admission_steps`):
 * what the handshake of admission.ts computes for each new client, without sockets,
 * so that other load on the machine disturbs it far less than the churn figures of
 * bench/admission.ts. Variants, measured in turn and given as medians:
 *
 *   lists     AccessControl.admit with `--allow`/`--deny` of 1000 CIDRs (the ranges
 *             are walked in order: the address matches the last allowed one)
 *   limits    admit and release with `--max-connections-per-ip` and
 *             `--connection-rate-per-ip`, over 65 536 addresses
 *   proxy_v2  parseProxyHeader of a v2 header (IPv4, no TLV), 1024 different ones
 *
 * Rates are per second of this process's CPU time (process.cpuUsage), so other work
 * on the machine slows the run but changes the figures much less. The "proxy CPU"
 * column is the CPU time of one decision; the "direct" column is empty.
 */
import { AccessControl } from '../src/access/access-control.js';
import { parseCidr } from '../src/access/cidr.js';
import { parseRate } from '../src/access/rate-limit.js';
import { parseProxyHeader } from '../src/proxy-protocol/parse.js';
import { proxyHeaderFields } from '../src/proxy-protocol/preface.js';
import { encodeV2 } from '../src/proxy-protocol/v2.js';
import type { Row, Scenario, Settings } from './lib.js';

const BATCH = 1024;
const MAX_OPS = 1e9;
const ROUNDS: Record<Settings['mode'], number> = { full: 5, quick: 3, smoke: 1 };

/**
 * opsPerSecond runs op in batches until `ms` have passed (or MAX_OPS) and returns
 * operations per second of this process's CPU time, not of the wall clock: on a
 * machine busy with other work the wall clock counts the time others ran.
 */
function opsPerSecond(ms: number, op: (i: number) => void): number {
  const start = performance.now();
  const cpuBefore = process.cpuUsage();
  let ops = 0;
  while (ops < MAX_OPS) {
    for (let j = 0; j < BATCH; j++) op(ops + j);
    ops += BATCH;
    if (performance.now() - start >= ms) break;
  }
  const cpu = process.cpuUsage(cpuBefore);
  return ops / ((cpu.user + cpu.system) / 1e6);
}

interface Step {
  id: string;
  label: string;
  op: (i: number) => void;
}

function steps(): Step[] {
  const loopback = Array.from({ length: 250 }, (_, i) => `127.0.1.${i + 1}`);
  const deny = Array.from({ length: 500 }, (_, i) =>
    parseCidr(
      i % 2 === 0 ? `100.${64 + (i >> 8)}.${i & 255}.0/24` : `2001:db8:${i.toString(16)}::/48`,
    ),
  );
  const allow = Array.from({ length: 499 }, (_, i) =>
    parseCidr(`172.${16 + (i >> 8)}.${i & 255}.0/24`),
  );
  allow.push(parseCidr('127.0.0.0/8'));
  const lists = new AccessControl({ allow, deny });
  const limits = new AccessControl({
    maxConnectionsPerIp: 1000,
    connectionRatePerIp: parseRate('100000000/1s'),
  });
  const spread = Array.from({ length: 65_536 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
  const headers = Array.from({ length: 1024 }, (_, i) =>
    encodeV2(
      proxyHeaderFields(
        { address: `10.2.${i >> 8}.${i & 255}`, port: 1024 + i },
        { address: '127.0.0.1', port: 443 },
      ),
    ),
  );
  let sink = 0;
  return [
    {
      id: 'lists',
      label: 'AccessControl.admit, 1000 CIDRs',
      op: (i) => {
        if (lists.admit(loopback[i % 250]).allowed) sink += 1;
      },
    },
    {
      id: 'limits',
      label: 'admit + release, per-IP count and rate',
      op: (i) => {
        const admission = limits.admit(spread[i & 65_535]);
        if (admission.allowed && admission.key !== null) limits.release(admission.key);
      },
    },
    {
      id: 'proxy_v2',
      label: 'parseProxyHeader, v2',
      op: (i) => {
        const result = parseProxyHeader(headers[i & 1023] as Buffer);
        if (result.status === 'done') sink += result.length;
        if (sink < 0) throw new Error('unreachable'); // keeps the work from being optimised away
      },
    },
  ];
}

/** admissionSteps is the micro-benchmark of the admission decisions. */
export const admissionSteps: Scenario = {
  ids: ['admission_steps'],
  async run(settings, only) {
    if (!only('admission_steps')) return [];
    const chosen = steps();
    for (const step of chosen) opsPerSecond(Math.max(20, settings.timerSetMs / 5), step.op); // warm up
    const rates = chosen.map(() => [] as number[]);
    for (let round = 0; round < ROUNDS[settings.mode]; round++) {
      for (const [i, step] of chosen.entries())
        rates[i]?.push(opsPerSecond(settings.timerSetMs, step.op));
    }
    return chosen.map((step, i): Row => {
      const sorted = [...(rates[i] ?? [])].sort((a, b) => a - b);
      const rate = sorted[sorted.length >> 1] ?? null;
      return {
        id: `admission_steps.${step.id}`,
        scenario: step.label,
        metric: 'decisions/s',
        direct: null,
        proxy: rate,
        digits: 0,
        proxyCpu: rate === null ? undefined : `${(1e6 / rate).toFixed(2)} µs each`,
        details: { rates: rates[i] },
      };
    });
  },
};
