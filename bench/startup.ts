/**
 * `npm run bench:startup [-- --rounds N] [--cli PATH]`: how long the command takes to
 * start, beside `node -e 0` in the same run. Three measurements, N rounds each,
 * interleaved so that a busy moment hits all three alike:
 *
 *   - `node -e 0`: spawn to exit, the floor;
 *   - `l4proxy --version`: spawn to exit;
 *   - a proxy from flags alone (`--listen 127.0.0.1:PORT --target UPSTREAM`): spawn
 *     until a real client on 127.0.0.1 has connected through it and had its bytes
 *     echoed by a real upstream (checked), then the proxy is ended by its PID.
 *
 * Prints a Markdown table: median and p90 in ms, and each median's ratio to
 * `node -e 0` (targets: --version within 1.5x, first connection within 2x). A
 * benchmark, not a test: nothing here fails on a slow machine. `--cli` measures
 * another build (e.g. one of the code before a change), for before/after figures.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Server } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    cli: { type: 'string', default: fileURLToPath(new URL('../dist/cli.js', import.meta.url)) },
  },
});
const ROUNDS = Math.max(1, Math.min(1000, Number(values.rounds) || 20));
const CLI = values.cli;
/** Each start must finish within this long, or the run stops (the machine is stuck). */
const LIMIT_MS = 30_000;

function ms(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e6;
}

/** exitTime spawns `args` and resolves with the ms from spawn to exit (status 0 only). */
async function exitTime(args: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  const [status] = (await withLimit(once(child, 'exit'), child)) as [number | null];
  if (status !== 0) throw new Error(`node ${args.join(' ')} exited ${status}`);
  return ms(start);
}

async function withLimit<T>(promise: Promise<T>, child: ChildProcess): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`no answer within ${LIMIT_MS} ms`));
    }, LIMIT_MS);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** echoOnce connects to `port` until it is accepted (bounded), sends bytes and checks the echo. */
async function echoOnce(port: number, endMs: number): Promise<void> {
  const message = Buffer.from('start-up bench\n');
  for (let attempt = 0; Date.now() < endMs; attempt++) {
    const socket = connect({ port, host: '127.0.0.1' });
    try {
      await once(socket, 'connect');
    } catch {
      socket.destroy();
      // Not listening yet: try again soon (a connect is refused at once).
      await new Promise((r) => setTimeout(r, attempt < 100 ? 1 : 10));
      continue;
    }
    socket.end(message);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(socket, 'end');
    socket.destroy();
    if (!Buffer.concat(chunks).equals(message)) throw new Error('the echo differs');
    return;
  }
  throw new Error(`no connection within ${LIMIT_MS} ms`);
}

/** firstConnection starts a flags-only proxy in front of `upstream` and times its first echo. */
async function firstConnection(upstream: number): Promise<number> {
  const port = await freePort();
  const start = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [
      CLI,
      '--listen',
      `127.0.0.1:${port}`,
      '--target',
      `127.0.0.1:${upstream}`,
      '--log-level',
      'error',
    ],
    { stdio: 'ignore' },
  );
  try {
    await echoOnce(port, Date.now() + LIMIT_MS);
    return ms(start);
  } finally {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const upstream: Server = createServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const upstreamPort = (upstream.address() as { port: number }).port;
  const rows: [string, () => Promise<number>][] = [
    ['`node -e 0`', () => exitTime(['-e', '0'])],
    ['`l4proxy --version`', () => exitTime([CLI, '--version'])],
    ['flags-only proxy, first connection echoed', () => firstConnection(upstreamPort)],
  ];
  const samples = rows.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, [, run]] of rows.entries()) samples[i]?.push(await run());
    process.stderr.write(`\rround ${round + 1}/${ROUNDS}`);
  }
  process.stderr.write('\n');
  upstream.close();
  const base = quantile(
    [...(samples[0] ?? [])].sort((a, b) => a - b),
    0.5,
  );
  const load = loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
  console.log(
    `Node ${process.version}, ${cpus().length} CPUs, load average ${load}, ${ROUNDS} rounds, ${CLI}\n`,
  );
  console.log('| start | median ms | p90 ms | median vs `node -e 0` |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [i, [name]] of rows.entries()) {
    const sorted = [...(samples[i] ?? [])].sort((a, b) => a - b);
    const median = quantile(sorted, 0.5);
    console.log(
      `| ${name} | ${median.toFixed(0)} | ${quantile(sorted, 0.9).toFixed(0)} | ${(median / base).toFixed(2)}x |`,
    );
  }
}

await main();
