/**
 * Shared pieces of the benchmark: the settings of a run, the result rows and goals,
 * time helpers and a latency histogram. Processes (the proxy under test and the
 * agents) are in bench/processes.ts; /proc readings in bench/system.ts.
 */

/** LOOPBACK is the only address the benchmark ever connects to or listens on. */
export const LOOPBACK = '127.0.0.1';

/** Settings are the knobs of one run, fixed by bench/run.ts from its arguments. */
export interface Settings {
  /** mode names the preset: `full`, `quick` or `smoke`. */
  mode: 'full' | 'quick' | 'smoke';
  /** durationMs is the measured window of each load step. */
  durationMs: number;
  /** warmupMs runs before each request/response window and is not counted. */
  warmupMs: number;
  /** idleConnections is how many connections the idle test holds (5000 full, 500 quick). */
  idleConnections: number;
  /** timerSetMs is how long each TimerSet micro-benchmark runs. */
  timerSetMs: number;
  /** retries: how many times a step disturbed by other processes is measured again (0 for smoke). */
  retries: number;
  /** proxyLogLevel is passed to the proxy as `--log-level` (default `warn`: no access log). */
  proxyLogLevel: string;
  /** proxyAdmin: run the proxy with `--admin 127.0.0.1:0` (metrics and the admin API on). */
  proxyAdmin: boolean;
  /** cpuProfileDir: when set, the proxy runs under `node --cpu-prof` and writes its profiles there. */
  cpuProfileDir: string | null;
  /** baselineCli: another build's dist/cli.js, measured beside this one where a scenario can (`admission`); null: none. */
  baselineCli: string | null;
}

/** Goal is a target from the issue, judged for one row. */
export interface Goal {
  text: string;
  met: boolean | null;
}

/**
 * Row is one line of the result table: a figure measured directly (load generator
 * straight to the upstream) and through the proxy, in the same run.
 */
export interface Row {
  /** id is `scenario.metric`, e.g. `bulk1.gbps`; the JSON output uses it. */
  id: string;
  scenario: string;
  metric: string;
  direct: number | null;
  proxy: number | null;
  /** digits after the decimal point when printed. */
  digits: number;
  /** proxyCpu is the proxy's CPU cost for this step, already formatted (e.g. `0.52 s/GB`). */
  proxyCpu?: string;
  goals?: Goal[];
  /** extra figures for the JSON file only. */
  details?: Record<string, unknown>;
  /**
   * baseline names what `direct` holds when it is not a direct connection (`haproxy`
   * doing the same work, bench/tls.ts); run.ts prints such rows in a table of their own.
   */
  baseline?: string;
}

/** Scenario is one module's entry: what it is called and how it runs. */
export interface Scenario {
  /** ids are the step names a filter matches (`bulk1`, `rr1k`, ...). */
  ids: readonly string[];
  run(settings: Settings, only: (id: string) => boolean, notes: string[]): Promise<Row[]>;
}

// ---------------------------------------------------------------- time and numbers

/** nowMs is wall-clock time in milliseconds with sub-ms resolution, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** sleep resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** ratio is proxy/direct, or null when either is missing or direct is 0. */
export function ratio(direct: number | null, proxy: number | null): number | null {
  if (direct === null || proxy === null || direct === 0) return null;
  return proxy / direct;
}

/** fixed formats `n` with `digits` decimals, or an em dash for null. */
export function fixed(n: number | null, digits: number): string {
  return n === null || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}

// ---------------------------------------------------------------- latency

// Log-linear buckets: exact below 64 µs, then 32 buckets per power of two (about 3 %).
const LINEAR = 64;
const PER_OCTAVE = 32;
const BUCKETS = LINEAR + (31 - 6) * PER_OCTAVE;

/**
 * Histogram counts latencies in whole microseconds in fixed memory, so a load
 * generator can record every request however long it runs. Histograms from several
 * processes are merged by adding their `counts`.
 */
export class Histogram {
  readonly counts: number[];
  total = 0;

  constructor(counts?: readonly number[]) {
    this.counts = counts === undefined ? new Array<number>(BUCKETS).fill(0) : [...counts];
    this.total = this.counts.reduce((a, b) => a + b, 0);
  }

  /** record adds one latency of `us` microseconds. */
  record(us: number): void {
    const v = Math.min(Math.max(0, Math.round(us)), 2 ** 31 - 1);
    let index = v;
    if (v >= LINEAR) {
      const exponent = 31 - Math.clz32(v); // >= 6
      const mantissa = v >>> (exponent - 5); // 32..63
      index = LINEAR + (exponent - 6) * PER_OCTAVE + (mantissa - 32);
    }
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.total += 1;
  }

  /** merge adds another histogram's counts to this one. */
  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++)
      this.counts[i] = (this.counts[i] ?? 0) + (other.counts[i] ?? 0);
    this.total += other.total;
  }

  /** percentile is the latency in µs below which a fraction `p` (0..1) of records fall. */
  percentile(p: number): number | null {
    if (this.total === 0) return null;
    const rank = Math.max(1, Math.ceil(p * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return bucketMiddle(i);
    }
    return null;
  }
}

function bucketMiddle(index: number): number {
  if (index < LINEAR) return index;
  const exponent = Math.floor((index - LINEAR) / PER_OCTAVE) + 6;
  const mantissa = ((index - LINEAR) % PER_OCTAVE) + 32;
  const low = mantissa * 2 ** (exponent - 5);
  return low + 2 ** (exponent - 5) / 2;
}

// ---------------------------------------------------------------- goals

/** atLeast judges `value >= min`; null (not measured) is neither met nor missed. */
export function atLeast(text: string, value: number | null, min: number): Goal {
  return { text, met: value === null ? null : value >= min };
}

/** atMost judges `value <= max`. */
export function atMost(text: string, value: number | null, max: number): Goal {
  return { text, met: value === null ? null : value <= max };
}
