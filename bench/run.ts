/**
 * `npm run bench [-- options] [filter ...]`: the proxy against a direct connection, in
 * the same run, on loopback. Prints one Markdown table (progress goes to stderr).
 *
 *     npm run bench                 # every scenario, 5 s per step, 5000 idle conns (~2 min)
 *     npm run bench -- --quick      # 2 s per step, 500 idle conns (under a minute)
 *     npm run bench -- --smoke      # the smallest run that exercises everything (CI)
 *     npm run bench -- bulk rr1k    # only the bulk steps and the rr1k step
 *     npm run bench -- --json out.json --duration 10 --log-level info
 *     npm run bench -- rr1k --cpu-prof /tmp/prof   # profile the proxy under one load
 *     npm run bench -- tls          # TLS termination side by side with haproxy (bench/tls.ts)
 *
 * Each scenario module starts its upstream (an agent process), a fresh proxy (the
 * built CLI, `node dist/cli.js`) in front of it, and its load agents; measures each
 * step direct and then through the proxy; and stops every process it started.
 * See docs/performance.md for what the figures mean and recorded results.
 * Start-up time is measured separately: `npm run bench:startup` (bench/startup.ts).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { admission } from './admission.js';
import { admissionSteps } from './admission-steps.js';
import { balance } from './balance.js';
import { bulk } from './bulk.js';
import { churn } from './churn.js';
import { idle } from './idle.js';
import { fixed, type Goal, type Row, ratio, type Scenario, type Settings } from './lib.js';
import { stopAll } from './processes.js';
import { requestResponse } from './request-response.js';
import { busyPercent, type Machine, machine } from './system.js';
import { timerSet } from './timer-set.js';
import { tls } from './tls.js';
import { toxics } from './toxics.js';

const SCENARIOS: readonly Scenario[] = [
  bulk,
  requestResponse,
  churn,
  idle,
  timerSet,
  balance,
  admission,
  admissionSteps,
  toxics,
  tls,
];
const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'];

const PRESETS: Record<
  Settings['mode'],
  Omit<Settings, 'proxyLogLevel' | 'cpuProfileDir' | 'proxyAdmin' | 'baselineCli'>
> = {
  full: {
    mode: 'full',
    retries: 2,
    durationMs: 5000,
    warmupMs: 500,
    idleConnections: 5000,
    timerSetMs: 1000,
  },
  quick: {
    mode: 'quick',
    retries: 2,
    durationMs: 2000,
    warmupMs: 300,
    idleConnections: 500,
    timerSetMs: 300,
  },
  smoke: {
    mode: 'smoke',
    retries: 0,
    durationMs: 300,
    warmupMs: 100,
    idleConnections: 50,
    timerSetMs: 50,
  },
};

const USAGE = `Usage: npm run bench -- [--quick | --smoke] [--duration S] [--conns N]
                        [--log-level LEVEL] [--json FILE] [--cpu-prof DIR] [FILTER ...]
  --quick          2 s per step, 500 idle connections (default: 5 s, 5000)
  --smoke          the smallest run that exercises every scenario (a few seconds)
  --duration S     seconds per measured step (0.1 to 60)
  --conns N        idle connections to hold (default 5000; 500 with --quick)
  --log-level L    the proxy's --log-level (default warn; info adds one access-log line per connection)
  --admin          run the proxy with --admin 127.0.0.1:0 (metrics histograms observed per connection)
  --json FILE      also write every figure, the settings and the machine to FILE
  --cpu-prof DIR   run the proxy under node --cpu-prof: one .cpuprofile per scenario in DIR
  --baseline-cli F also measure another build's dist/cli.js F where a scenario can (admission: its plain path)
  FILTER           run only the step with that id, or those whose id contains it: ${SCENARIOS.flatMap((s) => s.ids).join(', ')}`;

interface Options {
  settings: Settings;
  filters: string[];
  jsonPath: string | null;
}

function usageError(message: string): never {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function numberArg(flag: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value);
  if (value === undefined || !Number.isFinite(n) || n < min || n > max) {
    usageError(`${flag} expects a number from ${min} to ${max}, got ${value ?? 'nothing'}`);
  }
  return n;
}

function parseArgs(argv: readonly string[]): Options {
  let mode: Settings['mode'] = 'full';
  let durationMs: number | null = null;
  let conns: number | null = null;
  let proxyLogLevel = 'warn';
  let proxyAdmin = false;
  let jsonPath: string | null = null;
  let cpuProfileDir: string | null = null;
  let baselineCli: string | null = null;
  const filters: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--quick') mode = 'quick';
    else if (arg === '--smoke') mode = 'smoke';
    else if (arg === '--duration') durationMs = numberArg(arg, argv[++i], 0.1, 60) * 1000;
    else if (arg === '--conns') conns = Math.floor(numberArg(arg, argv[++i], 1, 50_000));
    else if (arg === '--log-level') {
      proxyLogLevel = argv[++i] ?? '';
      if (!LOG_LEVELS.includes(proxyLogLevel)) {
        usageError(`--log-level expects one of ${LOG_LEVELS.join(', ')}, got ${proxyLogLevel}`);
      }
    } else if (arg === '--admin') proxyAdmin = true;
    else if (arg === '--json') jsonPath = argv[++i] ?? usageError('--json expects a file name');
    else if (arg === '--cpu-prof') {
      cpuProfileDir = argv[++i] ?? usageError('--cpu-prof expects a directory');
    } else if (arg === '--baseline-cli') {
      baselineCli = argv[++i] ?? usageError('--baseline-cli expects a file');
      if (!existsSync(baselineCli)) usageError(`--baseline-cli: no such file ${baselineCli}`);
    } else if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (arg.startsWith('-')) usageError(`unknown option ${arg}`);
    else filters.push(arg);
  }
  const ids = SCENARIOS.flatMap((s) => s.ids);
  for (const filter of filters) {
    if (!ids.some((id) => id.includes(filter))) usageError(`no step matches "${filter}"`);
  }
  const settings: Settings = {
    ...PRESETS[mode],
    proxyLogLevel,
    proxyAdmin,
    cpuProfileDir,
    baselineCli,
  };
  if (durationMs !== null) settings.durationMs = durationMs;
  if (conns !== null) settings.idleConnections = conns;
  return { settings, filters, jsonPath };
}

function goalText(goals: readonly Goal[] | undefined): string {
  if (goals === undefined) return '';
  return goals
    .map((g) => `${g.text}: ${g.met === null ? 'not judged' : g.met ? 'met' : '**missed**'}`)
    .join('; ');
}

// baseline names the column the proxy is compared with: `direct`, or `haproxy` (bench/tls.ts).
function table(rows: readonly Row[], baseline = 'direct'): string {
  const head = [
    'scenario',
    'metric',
    baseline,
    'proxy',
    `proxy/${baseline}`,
    'proxy CPU',
    'goal (issue)',
  ];
  const body = rows.map((row) => {
    const r = ratio(row.direct, row.proxy);
    return [
      row.scenario,
      row.metric,
      fixed(row.direct, row.digits),
      fixed(row.proxy, row.digits),
      r === null ? '—' : `${r.toFixed(2)}×`,
      row.proxyCpu ?? '',
      goalText(row.goals),
    ];
  });
  const widths = head.map((h, c) =>
    Math.max(h.length, ...body.map((line) => (line[c] ?? '').length)),
  );
  const right = new Set([2, 3, 4, 5]);
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, c) => (right.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (right.has(c) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}

function header(settings: Settings, host: Machine): string {
  return [
    `## proxy benchmark (${settings.mode}: ${settings.durationMs / 1000} s per step, ${settings.idleConnections} idle connections)`,
    '',
    `Node ${host.node} · ${host.cpuModel} · ${host.cores} cores · Linux ${host.kernel} · ${host.date}`,
    '',
    `Proxy: \`node dist/cli.js --log-level ${settings.proxyLogLevel}${settings.proxyAdmin ? ' --admin 127.0.0.1:0' : ''}\` in its own process; upstreams and load ` +
      'generators: Node.js agent processes; all on 127.0.0.1. "direct" is the load generator ' +
      'connected straight to the same upstream, in the same run. Idle "direct": the upstream ' +
      'server\'s own memory per socket. TimerSet "direct": Node\'s setTimeout.',
  ].join('\n');
}

function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function main(): Promise<void> {
  const { settings, filters, jsonPath } = parseArgs(process.argv.slice(2));
  if (!existsSync(fileURLToPath(new URL('../dist/cli.js', import.meta.url)))) {
    usageError('dist/cli.js is missing: run `npm run build` first (`npm run bench` does)');
  }
  // A filter that is a step id selects that step alone ("bulk1"); any other selects
  // every step whose id contains it ("bulk").
  const ids = SCENARIOS.flatMap((s) => s.ids);
  const only = (id: string): boolean =>
    filters.length === 0 || filters.some((f) => id === f || (!ids.includes(f) && id.includes(f)));
  const host = machine();
  const notes: string[] = [];
  const busy = await busyPercent(500);
  if (busy > 10) {
    notes.push(`Before the run the CPUs were ${busy.toFixed(0)} % busy: figures may be noisy.`);
  }
  const started = performance.now();
  const rows: Row[] = [];
  for (const scenario of SCENARIOS) {
    if (!scenario.ids.some(only)) continue;
    progress(`${scenario.ids.filter(only).join(', ')} ...`);
    const scenarioRows = await scenario.run(settings, only, notes);
    for (const row of scenarioRows) {
      const r = ratio(row.direct, row.proxy);
      progress(
        `  ${row.id}: ${row.baseline ?? 'direct'} ${fixed(row.direct, row.digits)}, proxy ${fixed(row.proxy, row.digits)}` +
          `${r === null ? '' : ` (${r.toFixed(2)}×)`}${row.proxyCpu ? `, ${row.proxyCpu}` : ''}`,
      );
    }
    rows.push(...scenarioRows);
  }
  const seconds = (performance.now() - started) / 1000;
  progress(`done in ${seconds.toFixed(0)} s`);
  const out = [header(settings, host)];
  const direct = rows.filter((row) => row.baseline === undefined);
  if (direct.length > 0) out.push('', table(direct));
  for (const baseline of new Set(rows.flatMap((row) => row.baseline ?? []))) {
    out.push(
      '',
      table(
        rows.filter((row) => row.baseline === baseline),
        baseline,
      ),
    );
  }
  if (notes.length > 0) out.push('', ...notes.map((n) => `- ${n}`));
  process.stdout.write(`${out.join('\n')}\n`);
  if (jsonPath !== null) {
    const figures = rows.map((row) => ({ ...row, ratio: ratio(row.direct, row.proxy) }));
    const json = { machine: host, settings, seconds, rows: figures, notes };
    writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
    progress(`all figures: ${jsonPath}`);
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopAll();
    process.exit(130);
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    stopAll();
    process.stderr.write(
      `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
