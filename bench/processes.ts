/**
 * The processes of a run. The proxy runs as the built CLI in a process of its own,
 * so its CPU time and memory can be read from /proc without counting the load
 * generator's; upstreams and load generators run in agent processes (bench/agent.ts)
 * so none of them shares an event loop with another. Every process started here is
 * tracked and stopped by PID when its scenario ends, or when the run exits.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOOPBACK, type Settings, sleep } from './lib.js';

// ---------------------------------------------------------------- ports

/** freePort asks the kernel for a free loopback port (it is released before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** canConnect resolves true when something accepts on `port` within 1 s. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: LOOPBACK, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** listenOn starts `server` on a free loopback port (backlog 4096) and resolves with the port. */
export function listenOn(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: LOOPBACK, port: 0, backlog: 4096 }, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

// ---------------------------------------------------------------- processes

const tracked = new Set<ChildProcess>();

/** trackedPids are the PIDs of every child process of this run still tracked. */
export function trackedPids(): number[] {
  return [...tracked].flatMap((child) => (child.pid === undefined ? [] : [child.pid]));
}

/** stopProcess sends SIGTERM to one child we started, then SIGKILL after `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = 3000): Promise<void> {
  tracked.delete(child);
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return; // it exited in the meantime
  }
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** stopAll kills, by PID, every child still running (used when the run exits early). */
export function stopAll(): void {
  for (const child of tracked) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  tracked.clear();
}

/** ProxyProcess is the proxy under test: the built CLI in a process of its own. */
export interface ProxyProcess {
  pid: number;
  port: number;
  /** stop sends SIGTERM (the proxy drains and exits 0), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/**
 * startProxy runs `node dist/cli.js --listen 127.0.0.1:PORT --target 127.0.0.1:TARGET`
 * (plus `extraArgs`, e.g. `--tls-cert`) and resolves once it accepts connections. Its
 * stderr (the log) goes to a temporary file, shown if the proxy fails to start; the
 * caller must stop() it. `cli` runs another build's dist/cli.js (default this one's).
 */
export async function startProxy(
  targetPort: number,
  settings: Settings,
  extraArgs: readonly string[] = [],
  cli: string = CLI,
): Promise<ProxyProcess> {
  const port = await freePort();
  const logPath = join(tmpdir(), `proxy-bench-${process.pid}-${port}.log`);
  const nodeArgs =
    settings.cpuProfileDir === null
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfileDir}`];
  const args = [
    ...nodeArgs,
    cli,
    '--listen',
    `${LOOPBACK}:${port}`,
    '--target',
    `${LOOPBACK}:${targetPort}`,
    '--log-level',
    settings.proxyLogLevel,
    ...(settings.proxyAdmin ? ['--admin', `${LOOPBACK}:0`] : []),
    ...extraArgs,
  ];
  const child = await startListening('the proxy', process.execPath, args, port, logPath, 'stderr');
  return {
    pid: child.pid as number,
    port,
    stop: async () => {
      // SIGTERM: the proxy closes, exits 0 and (under --cpu-prof) writes its profile.
      await stopProcess(child, 10_000);
      unlinkSync(logPath);
    },
  };
}

/**
 * startListening spawns `command args`, tracked, with its stderr (`'stderr'`) or both
 * stdout and stderr (`'both'`) in the file `logPath`, and resolves with the child once
 * something accepts on `port` (it has a PID then). When the child exits or 10 s pass
 * first, it stops the child, removes the log and throws `NAME did not start on port
 * PORT: ` and the log's last 500 characters. The caller stops the child it gets.
 */
export async function startListening(
  name: string,
  command: string,
  args: readonly string[],
  port: number,
  logPath: string,
  output: 'stderr' | 'both',
): Promise<ChildProcess> {
  const logFd = openSync(logPath, 'w');
  const child = spawn(command, args, {
    stdio: ['ignore', output === 'both' ? logFd : 'ignore', logFd],
  });
  closeSync(logFd);
  tracked.add(child);
  const deadline = Date.now() + 10_000;
  while (child.pid !== undefined && child.exitCode === null && Date.now() < deadline) {
    if (await canConnect(port)) return child;
    await sleep(50);
  }
  await stopProcess(child);
  const log = readFileSync(logPath, 'utf8').slice(-500);
  unlinkSync(logPath);
  throw new Error(`${name} did not start on port ${port}: ${log}`);
}

/** AgentMessage is what an agent sends back for one call. */
export interface AgentReply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));

/**
 * Agent is a child process (bench/agent.ts, through tsx as this process is) that
 * runs one upstream server or load generator per call. `call()` resolves with the
 * role's result; a server role resolves with its port and keeps serving until stop().
 */
export class Agent {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #nextId = 0;

  constructor() {
    // fork() passes on process.execArgv, so the child loads tsx as this process did.
    this.#child = fork(AGENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    tracked.add(this.#child);
    this.#child.on('message', (message: AgentReply) => {
      const pending = this.#pending.get(message.id);
      if (pending === undefined) return;
      this.#pending.delete(message.id);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(new Error(message.error ?? 'agent call failed'));
    });
    this.#child.on('exit', (code, signal) => {
      for (const pending of this.#pending.values()) {
        pending.reject(new Error(`agent exited (${code ?? signal}) during a call`));
      }
      this.#pending.clear();
    });
  }

  /** pid is the agent's process id (the idle test reads a direct upstream's memory by it). */
  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /** call runs `role` with `params` in the agent and resolves with its result. */
  call<R>(role: string, params: object): Promise<R> {
    const id = this.#nextId++;
    return new Promise<R>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#child.send({ id, role, params });
    });
  }

  /** stop ends the agent by PID. */
  stop(): Promise<void> {
    return stopProcess(this.#child);
  }
}

/** startServer starts an agent running server `role` and resolves with it and its port. */
export async function startServer(
  role: string,
  params: object,
): Promise<{ agent: Agent; port: number }> {
  const agent = new Agent();
  const { port } = await agent.call<{ port: number }>(role, params);
  return { agent, port };
}
