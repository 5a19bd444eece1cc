/**
 * Test helpers for the end-to-end tests: run the built CLI (`dist/cli.js`, so run
 * `npm run build` first) as a child process, collect its stdout and stderr, and wait
 * for a log line or for its exit. Every wait has a deadline (scaled for a busy
 * machine, see time.ts), and every child is ended by its PID in `t.after` if it is
 * still running. `runCli` starts at most RUN_CLI_LIMIT short-lived CLIs at a time.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from './net.js';
import { deadline, Limiter } from './time.js';

/** CLI_PATH is the built command, resolved from this file (not from the working directory). */
export const CLI_PATH = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** LogRecord is one `--log-format json` line; only the fields the tests read are typed. */
export interface LogRecord {
  time: string;
  level: string;
  msg: string;
  id?: string;
  listener?: string;
  address?: string;
  client?: string;
  upstream?: string | null;
  connect_ms?: number;
  duration_ms?: number;
  bytes_to_upstream?: number;
  bytes_to_client?: number;
  cause?: string;
  /** toxic: the toxic that ended the connection (cause `toxic`). */
  toxic?: string;
  first_close?: string;
  error?: string;
  signal?: string;
  code?: string;
  during?: string;
  /** added, removed, changed: the listener names of a `config reloaded` record. */
  added?: string[];
  removed?: string[];
  changed?: string[];
  /** reason: why a `config reload refused` (the one-line error). */
  reason?: string;
  path?: string;
  /** fd: the inherited descriptor a `listening` listener took (socket activation). */
  fd?: number;
}

/** CliExit is how the child ended and when (`Date.now()` at its 'exit' event). */
export interface CliExit {
  status: number | null;
  signal: NodeJS.Signals | null;
  atMs: number;
}

/**
 * CliOptions: `nofile` runs the CLI under `ulimit -n nofile` (through bash, then exec).
 * `prefix` runs it through a command that execs it (`systemd-socket-activate -l ...`);
 * the PID is then that command's. `env` replaces the environment, `stdin: 'pipe'`
 * gives the child a stdin to write, and `fds` are passed as descriptors 3, 4, ...
 * `nodeArgs` go to node before the script (`--import HOOK`).
 */
export interface CliOptions {
  nofile?: number;
  prefix?: readonly string[];
  env?: NodeJS.ProcessEnv;
  stdin?: 'pipe' | 'ignore';
  fds?: readonly (number | Socket)[];
  nodeArgs?: readonly string[];
}

/** CliChild is a running (or finished) CLI process and everything it wrote so far. */
export interface CliChild {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** lines is every complete stderr line so far. */
  lines(): string[];
  /** records parses every stderr line that is a JSON object (`--log-format json`). */
  records(): LogRecord[];
  /** exit is set once the process has exited and its output is fully read. */
  readonly exit: CliExit | null;
  /** waitForLine resolves with the first stderr line that matches, or rejects after `timeoutMs`. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number, what?: string): Promise<string>;
  /** waitForRecord is waitForLine for JSON records. */
  waitForRecord(
    match: (record: LogRecord) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<LogRecord>;
  /** waitForExit resolves when the process has exited (output drained), or rejects after `timeoutMs`. */
  waitForExit(timeoutMs?: number): Promise<CliExit>;
}

/** RunningCli is a CLI that logged `listening`: `port` and `address` are the bound ones. */
export interface RunningCli extends CliChild {
  port: number;
  address: string;
}

function parseRecord(line: string): LogRecord | null {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line) as LogRecord;
  } catch {
    return null;
  }
}

/**
 * spawnCli starts `node dist/cli.js ...args` with stdout and stderr piped. The child
 * is killed (SIGKILL, by PID) after the test if it has not exited by then.
 */
export function spawnCli(
  t: TestContext,
  args: readonly string[],
  options: CliOptions = {},
): CliChild {
  const spawnOptions: SpawnOptions = {
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe', ...(options.fds ?? [])],
    env: options.env ?? process.env,
  };
  const [command = process.execPath, ...words] = options.prefix ?? [];
  const child: ChildProcess =
    options.nofile === undefined
      ? spawn(
          command,
          [
            ...words,
            ...(options.prefix === undefined ? [] : [process.execPath]),
            ...(options.nodeArgs ?? []),
            CLI_PATH,
            ...args,
          ],
          spawnOptions,
        )
      : // exec keeps the PID: the PID we hold is the proxy's, not bash's.
        spawn(
          'bash',
          [
            '-c',
            `ulimit -n ${options.nofile} && exec "$0" "$@"`,
            process.execPath,
            ...(options.nodeArgs ?? []),
            CLI_PATH,
            ...args,
          ],
          spawnOptions,
        );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  let exit: CliExit | null = null;
  let exitedAtMs = 0;
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  child.on('exit', () => {
    exitedAtMs = Date.now();
  });
  // 'close' comes after 'exit' and after both pipes are drained.
  child.on('close', (status: number | null, signal: NodeJS.Signals | null) => {
    exit = { status, signal, atMs: exitedAtMs || Date.now() };
  });
  child.on('error', () => {}); // a spawn failure shows up as a timeout with the output so far

  const lines = (): string[] => {
    const all = stderr.split('\n');
    all.pop(); // the part after the last newline is not a complete line yet
    return all;
  };
  const records = (): LogRecord[] =>
    lines()
      .map(parseRecord)
      .filter((r): r is LogRecord => r !== null);
  const describe = (): string => `\n--- stderr ---\n${stderr}--- stdout ---\n${stdout}`;

  // waitForItem waits until `list()` has an item that matches, or the CLI exited.
  async function waitForItem<T>(
    list: () => T[],
    match: (item: T) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<T> {
    let found: T | undefined;
    await waitFor(
      () => {
        found = list().find(match);
        return found !== undefined || exit !== null;
      },
      timeoutMs,
      what,
    ).catch((err: Error) => {
      throw new Error(`${err.message}${describe()}`);
    });
    if (found === undefined)
      throw new Error(`exited before ${what}: ${JSON.stringify(exit)}${describe()}`);
    return found;
  }

  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    lines,
    records,
    get exit() {
      return exit;
    },
    waitForLine(match, timeoutMs = 5000, what = 'a log line') {
      return waitForItem(lines, match, timeoutMs, what);
    },
    waitForRecord(match, timeoutMs = 5000, what = 'a log record') {
      return waitForItem(records, match, timeoutMs, what);
    },
    async waitForExit(timeoutMs = 5000) {
      await waitFor(() => exit !== null, timeoutMs, 'the CLI to exit').catch((err: Error) => {
        throw new Error(`${err.message}${describe()}`);
      });
      return exit as unknown as CliExit;
    },
  };
}

/**
 * RUN_CLI_LIMIT is how many `runCli` children this test file runs at once: one per
 * CPU, at least two. Starting Node is CPU-bound, so more at once only makes each
 * slower: 27 at once on 2 cores took 7.4 s, past the 5 s each was given.
 */
export const RUN_CLI_LIMIT = Math.max(2, availableParallelism());

const runCliSlots = new Limiter(RUN_CLI_LIMIT);

/**
 * runCli runs the CLI to completion and returns its exit and output. It waits for
 * one of RUN_CLI_LIMIT slots first; `timeoutMs` (scaled, see time.ts) counts from
 * the child's start, not from that wait. Only runCli takes slots and each holds one for a
 * bounded time (a child still running at the deadline is killed by its PID), so a
 * test that keeps long-running CLIs (startCli, spawnCli) never waits on them here.
 */
export function runCli(
  t: TestContext,
  args: readonly string[],
  timeoutMs = 5000,
): Promise<CliExit & { stdout: string; stderr: string }> {
  return runCliSlots.run(async () => {
    const cli = spawnCli(t, args);
    try {
      const exit = await cli.waitForExit(timeoutMs);
      return { ...exit, stdout: cli.stdout(), stderr: cli.stderr() };
    } finally {
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
    }
  });
}

const LISTENING_TEXT = / INFO listening .*\baddress=(\S+)/;

function listeningAddress(line: string): string | null {
  const record = parseRecord(line);
  if (record !== null) return record.msg === 'listening' ? (record.address ?? null) : null;
  return LISTENING_TEXT.exec(line)?.[1] ?? null;
}

/**
 * startCli starts the CLI with `args` (which name the --listen address, usually
 * `127.0.0.1:0`), waits for its `listening` line (text or JSON) and parses the bound
 * address from its `address` field.
 */
export async function startCli(
  t: TestContext,
  args: readonly string[],
  options: CliOptions = {},
): Promise<RunningCli> {
  const cli = spawnCli(t, args, options);
  const line = await cli.waitForLine(
    (l) => listeningAddress(l) !== null,
    5000,
    'the listening line',
  );
  const address = listeningAddress(line) ?? '';
  const port = Number(/:(\d+)$/.exec(address)?.[1]);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in ${JSON.stringify(line)}`);
  return Object.assign(cli, { port, address });
}

/** adminUrl waits for the CLI's `admin listening` record (`--admin`) and returns the admin's URL, `http://HOST:PORT`. */
export async function adminUrl(cli: CliChild): Promise<string> {
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening', 5000, 'the admin');
  return `http://${admin.address}`;
}

/** withTimeout resolves like `promise`, or rejects once `timeoutMs` (scaled, see time.ts) has passed. */
export async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const limitMs = deadline(timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${limitMs}ms: ${what}`)), limitMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
