#!/usr/bin/env node
/**
 * The `l4proxy` command: argv → options → createProxy() → listen, plus signals and
 * exit codes, as the CLI contract the project was given says (README.md "The
 * command" and `l4proxy --help` spell it out). The only module that reads
 * `process.argv` or calls `process.exit`.
 *
 * Exit status: 0 after a clean shutdown (or a valid `check`), 2 for a usage error
 * (one line on stderr naming the flag, or the file, line and field), 1 when the
 * proxy cannot start (the line names the address).
 *
 * Signals are the design's third kind of event: Node delivers them on the event
 * loop (libuv watches them through a self-pipe, as a signalfd would), so a handler
 * here runs between I/O callbacks like any other event.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { AdminOptions, AdminServer } from './admin/server.js';
import type { WorkerStartError } from './cluster.js';
import { formatAddress, parseAddress } from './config/address.js';
import {
  type AdminFlags,
  type CliCommand,
  MAX_WORKERS,
  parseArgv,
  USAGE,
  type WorkerCount,
} from './config/args.js';
import { type Config, type DefaultOverrides, resolveConfig } from './config/config.js';
import type { FileSettings } from './config/file.js';
import { OPTIONS } from './config/options.js';
import { connectionRecord } from './connection-info.js';
import { errorCode, ProxyError } from './errors.js';
import type { ReloadResult } from './index.js';
import { type LogFormat, Logger, type LoggerOptions, type LogLevel } from './log.js';
import {
  encodeWorkerFds,
  listenFdsFromEnv,
  takeWorkerFds,
  WORKER_FDS_ENV,
} from './socket-activation.js';
import type { Supervisor } from './supervisor.js';
import { NAME, VERSION } from './version.js';
import {
  parseWorkerAccept,
  type TcpAddress,
  useWorkerAccept,
  type WorkerAccept,
} from './worker-accept.js';
import { FIXED_YOUNG_GENERATION, keepYoungGenerationSmall } from './young-generation.js';

// Modules are loaded where they are used (`await import`), so that a command loads
// only what it needs: nothing of the proxy for --version or --help, no YAML parser
// or schema validator without --config, no admin server or prom-client without
// --admin, no node:cluster outside --workers N (docs/design.md, "Start-up").
// A worker forked by node:cluster has an IPC channel (process.send); only then is
// node:cluster asked (its NODE_UNIQUE_ID is gone from the environment by now).
const WORKER = process.send === undefined ? undefined : await import('./cluster-worker.js');
/** WorkerSide is the worker's half of `--workers N`, loaded only in a worker. */
type WorkerSide = typeof import('./cluster-worker.js');
/** WORKER_ID is set in a worker process of `--workers N` (see src/cluster.ts). */
const WORKER_ID = WORKER?.workerId();
/** youngGenerationKept: start() fixed the young generation's size (young-generation.ts). */
let youngGenerationKept = false;

function fail(status: 1 | 2, message: string): never {
  // A worker tells the primary, which prints the line once for all workers.
  if (WORKER_ID !== undefined) WORKER?.reportStartFailure(status, message);
  else process.stderr.write(`${NAME}: ${message}\n`);
  process.exit(status);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function main(argv: readonly string[]): Promise<void> {
  let command: CliCommand;
  try {
    command = parseArgv(argv);
  } catch (err) {
    fail(2, messageOf(err));
  }
  switch (command.kind) {
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return;
    case 'version':
      process.stdout.write(`${NAME} ${VERSION}\n`);
      return;
    case 'check':
      await check(command.configFile, command.overrides);
      return;
    case 'run':
    case 'admin-only':
      await start({
        settings: { listeners: command.kind === 'run' ? [command.listener] : [] },
        level: command.logLevel,
        format: command.logFormat,
        reloadFrom: null,
        admin: command.admin,
        workers: command.workers,
        watchConfig: false,
      });
      return;
    case 'config': {
      const settings = await loadOrExit(command.configFile, command.overrides);
      const level = command.logLevel ?? settings.logLevel ?? OPTIONS.logLevel.default;
      const format = command.logFormat ?? settings.logFormat ?? OPTIONS.logFormat.default;
      // A token file named in the config file is relative to that file.
      // `--admin-host` without `--admin` adds to the file's names.
      const fileAdmin = settings.admin && {
        listen: settings.admin.listen,
        tokenFile:
          settings.admin.tokenFile === undefined
            ? undefined
            : resolve(dirname(command.configFile), settings.admin.tokenFile),
        hosts: [...settings.admin.hosts, ...command.adminHosts],
      };
      if (command.admin === undefined && fileAdmin === undefined && command.adminHosts.length > 0)
        fail(2, '--admin-host needs --admin ADDR or an admin section in the config file');
      await start({
        settings,
        level,
        format,
        reloadFrom: { file: command.configFile, overrides: command.overrides },
        admin: command.admin ?? fileAdmin,
        workers: command.workers ?? settings.workers,
        watchConfig: command.watchConfig,
      });
      return;
    }
  }
}

async function loadOrExit(file: string, overrides: DefaultOverrides): Promise<FileSettings> {
  const { readConfigFile } = await import('./config/file.js');
  try {
    return readConfigFile(file, overrides);
  } catch (err) {
    fail(2, messageOf(err));
  }
}

/** check validates a config file like `nginx -t`: a summary on stdout, exit 0, or one error line, exit 2. */
async function check(file: string, overrides: DefaultOverrides): Promise<void> {
  const settings = await loadOrExit(file, overrides);
  let config: Config;
  try {
    config = resolveConfig(settings.listeners);
  } catch (err) {
    fail(2, `${file}: ${messageOf(err)}`);
  }
  const { summarizeConfig } = await import('./config/summary.js');
  process.stdout.write(summarizeConfig(file, config));
}

/** ReloadSource is where SIGHUP and POST /api/reload re-read the configuration from. */
interface ReloadSource {
  file: string;
  overrides: DefaultOverrides;
}

/** Plan is what to start: the same in the single process, the primary and every worker. */
interface Plan {
  settings: Pick<FileSettings, 'listeners'>;
  level: LogLevel;
  format: LogFormat;
  reloadFrom: ReloadSource | null;
  admin: AdminFlags | undefined;
  workers: WorkerCount | undefined;
  /** watchConfig: reload when the file changes too (`--watch-config`; needs reloadFrom). */
  watchConfig: boolean;
}

/**
 * start runs the plan in one of three roles: a worker forked by a primary (the
 * single-process path, with the primary's messages in place of most signals), the
 * primary of `--workers N` (N > 1), or the one process that does everything.
 */
async function start(plan: Plan): Promise<void> {
  youngGenerationKept = keepYoungGenerationSmall();
  if (WORKER !== undefined && WORKER_ID !== undefined) return runWorker(plan, WORKER, WORKER_ID);
  const workers = plan.workers === 'auto' ? availableParallelism() : (plan.workers ?? 1);
  if (workers > 1) return runPrimary(plan, Math.min(workers, MAX_WORKERS));
  return runSingle(plan);
}

async function createOrExit(plan: Plan, log: LoggerOptions): Promise<Supervisor> {
  const { createSupervisor } = await import('./create-proxy.js');
  try {
    const proxy = createSupervisor({ listeners: plan.settings.listeners, log });
    proxy.log.debug(
      youngGenerationKept
        ? `young generation kept at its initial size (${FIXED_YOUNG_GENERATION})`
        : 'young generation sized by node flags',
    );
    return proxy;
  } catch (err) {
    const file = plan.reloadFrom?.file;
    fail(2, file === undefined ? messageOf(err) : `${file}: ${messageOf(err)}`);
  }
}

/**
 * listenOrExit binds every listener (each logs "listening"), or exits 1 naming the
 * address (2 for an inherited socket it cannot listen on). `fds`: socket activation.
 */
async function listenOrExit(
  proxy: Supervisor,
  fds: Map<string, number> | undefined,
): Promise<void> {
  try {
    await proxy.listen({ fds });
  } catch (err) {
    if (errorCode(err) === 'PROXY_ERR_LISTEN') fail(1, messageOf(err));
    if (errorCode(err) === 'PROXY_ERR_INVALID_CONFIG') fail(2, messageOf(err));
    throw err;
  }
}

/**
 * hasTlsFiles: a listener from flags names certificate files (`--tls-cert`,
 * `--tls-client-ca`, `--target-ca`), which SIGHUP re-reads though there is no file.
 */
function hasTlsFiles(plan: Plan): boolean {
  return (
    plan.reloadFrom === null &&
    plan.settings.listeners.some((l) =>
      [l.tlsCert, l.tlsClientCa, l.targetCa].some((file) => (file ?? null) !== null),
    )
  );
}

/** reloadFlags applies the flags' listener again: its TLS files are read anew. */
function reloadFlags(proxy: Supervisor, plan: Plan): Promise<ReloadResult> {
  return proxy.reload({ listeners: plan.settings.listeners });
}

async function runSingle(plan: Plan): Promise<void> {
  const proxy = await createOrExit(plan, { level: plan.level, format: plan.format });
  const reloadFrom = plan.reloadFrom;
  const shutdown = shutdownControl(proxy);
  let listening = false;
  // The admin address is bound first and the listeners second, so that whichever
  // cannot bind stops the start before anything is reported as listening.
  const admin =
    plan.admin &&
    (await bindAdmin((Server, options) => new Server(proxy, options), plan.admin, proxy.log, {
      reload: reloadFrom === null ? undefined : () => reloadConfig(proxy, reloadFrom),
      ready: () => listening && !shutdown.draining(),
    }));
  await listenOrExit(proxy, activatedFds(proxy, proxy.log));
  listening = true;
  if (admin !== undefined) logAdminListening(admin, proxy.log);
  process.on('SIGTERM', shutdown.signal);
  process.on('SIGINT', shutdown.signal);
  // SIGHUP re-reads the config file and applies the difference (see Supervisor.reload).
  // A file with errors is refused and the running configuration stays as it was.
  await reloadOnSighup(
    plan,
    proxy.log,
    reloadFrom === null
      ? hasTlsFiles(plan)
        ? () => reloadFlags(proxy, plan)
        : null
      : () => reloadConfig(proxy, reloadFrom),
  );
  process.on('SIGUSR1', () => logSnapshot(proxy));
}

/**
 * runWorker is the single-process path inside a worker: the same proxy, but the
 * admin server runs in the primary, which also passes signals on as messages.
 */
async function runWorker(plan: Plan, side: WorkerSide, id: number): Promise<void> {
  // A terminal sends these to the whole process group; the primary passes them on.
  for (const signal of ['SIGINT', 'SIGHUP', 'SIGUSR1'] as const) process.on(signal, () => {});
  const proxy = await createOrExit(plan, {
    level: plan.level,
    format: plan.format,
    write: side.workerLogWriter(plan.format, id),
  });
  // The primary decides the targets' states for every worker (src/cluster-health.ts).
  const health = side.shareHealth();
  proxy.shareHealth = (pool, listener, options) => health.start(pool, listener, options);
  // Bind our own sockets, or let the primary hand connections over: its choice.
  useWorkerAccept(parseWorkerAccept(process.env));
  // The primary matched the sockets systemd passed; it listens on them for us.
  await listenOrExit(proxy, takeWorkerFds(process.env));
  // The latency histograms of /metrics are kept here and added up by the primary.
  const histograms =
    plan.admin && new (await import('./admin/metrics.js')).ConnectionHistograms(proxy);
  const shutdown = shutdownControl(proxy);
  const reloadFrom = plan.reloadFrom;
  side.serveWorker(
    proxy,
    {
      shutdown: (graceful, signal) => (graceful ? shutdown.drain(signal) : shutdown.now(signal)),
      reload: () =>
        reloadFrom !== null
          ? reloadConfig(proxy, reloadFrom)
          : hasTlsFiles(plan)
            ? reloadFlags(proxy, plan)
            : Promise.reject(
                new ProxyError('PROXY_ERR_INVALID_CONFIG', 'no --config file to reload'),
              ),
      snapshot: () => logSnapshot(proxy),
    },
    histograms,
  );
  // SIGTERM sent to this worker alone drains it; the primary then starts another.
  process.on('SIGTERM', shutdown.signal);
}

/**
 * runPrimary forks the workers and serves no connection itself: it passes signals
 * on, replaces workers that die, and runs the admin server over all of them.
 */
async function runPrimary(plan: Plan, workers: number): Promise<void> {
  const log = new Logger({ level: plan.level, format: plan.format });
  const { ClusterPrimary } = await import('./cluster.js');
  // Sockets passed by systemd stay with the primary: node:cluster's round-robin handle
  // listens on the primary's descriptor when a worker asks to listen on it.
  const described = await createOrExit(plan, { level: 'silent' });
  const fds = activatedFds(described, log);
  if (fds !== undefined) process.env[WORKER_FDS_ENV] = encodeWorkerFds(fds);
  // One set of TLS session ticket keys for every worker: a ticket resumes on any of them.
  (await import('./tls/ticket-keys.js')).shareTicketKeys();
  let accept: WorkerAccept | undefined;
  try {
    accept = parseWorkerAccept(process.env);
  } catch (err) {
    fail(2, messageOf(err));
  }
  const primary = new ClusterPrimary({
    workers,
    log,
    accept,
    addresses: tcpAddresses(described, fds),
  });
  const reloadFrom = plan.reloadFrom;
  const view = primary.view;
  // Bound before any worker is forked: an admin address in use stops the start
  // before any worker reports its listeners.
  const admin =
    plan.admin &&
    (await bindAdmin(
      (Server, options) =>
        new Server(view, { ...options, histograms: view, toxiproxy: primary.toxiproxy }),
      plan.admin,
      log,
      {
        reload: reloadFrom === null ? undefined : () => primary.reload(),
        ready: () => primary.ready,
      },
    ));
  try {
    await primary.start();
  } catch (err) {
    // A worker could not start: its own line, printed once, and its exit status.
    if (errorCode(err) === 'PROXY_ERR_WORKER')
      fail((err as WorkerStartError).status, messageOf(err));
    throw err;
  }
  if (admin !== undefined) logAdminListening(admin, log);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals === 1) {
      log.info('shutting down', { signal, workers: primary.readyWorkers().length });
      primary.shutdown(true, signal);
    } else {
      log.info('closing all connections now', { signal });
      primary.shutdown(false, signal);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Each worker re-reads the file and logs "config reloaded" or why it refused.
  await reloadOnSighup(
    plan,
    log,
    reloadFrom !== null || hasTlsFiles(plan) ? () => primary.reload() : null,
  );
  process.on('SIGUSR1', () => primary.snapshot());
  void primary.done.then((status) => {
    if (status === 0) log.info('stopped');
    process.exit(status);
  });
}

/** activatedFds: the sockets systemd passed, matched to `proxy`'s listeners; exits 2 on a mismatch. */
function activatedFds(proxy: Supervisor, log: Logger): Map<string, number> | undefined {
  const names = proxy.listenerInfo().map((l) => l.name);
  try {
    return listenFdsFromEnv(process.env, process.pid, names, (reason) =>
      log.warn('socket activation ignored', { reason }),
    );
  } catch (err) {
    fail(2, messageOf(err));
  }
}

/** tcpAddresses are the TCP addresses the listeners will bind (those given no socket in `fds`). */
function tcpAddresses(proxy: Supervisor, fds: Map<string, number> | undefined): TcpAddress[] {
  const addresses: TcpAddress[] = [];
  for (const info of proxy.listenerInfo()) {
    if (fds?.has(info.name)) continue;
    const parsed = parseAddress(info.listen, { allowPortZero: true });
    if (parsed.path === undefined)
      addresses.push({ host: parsed.host, port: parsed.port, text: info.listen });
  }
  return addresses;
}

/**
 * bindAdmin creates the admin server and binds its address, or exits (2 for a bad
 * token file, 1 when the address cannot be bound). It logs nothing on success: the
 * caller logs "admin listening" once the listeners are bound too.
 */
async function bindAdmin(
  create: (Server: typeof AdminServer, options: AdminOptions) => AdminServer,
  flags: AdminFlags,
  log: Logger,
  actions: { reload: (() => Promise<ReloadResult>) | undefined; ready: () => boolean },
): Promise<AdminServer> {
  let token: string | undefined;
  if (flags.tokenFile !== undefined) {
    try {
      token = readFileSync(flags.tokenFile, 'utf8').trim();
    } catch (err) {
      fail(2, `--admin-token-file ${flags.tokenFile}: cannot read it: ${errorCode(err)}`);
    }
    if (token === '') fail(2, `--admin-token-file ${flags.tokenFile}: the file is empty`);
  }
  const { AdminServer: Server } = await import('./admin/server.js');
  let admin: AdminServer;
  try {
    admin = create(Server, {
      listen: parseAddress(flags.listen, { allowBarePort: true, allowPortZero: true }),
      token,
      hosts: flags.hosts,
      reload: actions.reload,
      ready: actions.ready,
      onError: (err) =>
        log.warn('admin server error', { code: errorCode(err), message: err.message }),
      onStaleSocket: (path) => log.warn('removing stale unix socket', { admin: true, path }),
    });
  } catch (err) {
    fail(2, messageOf(err));
  }
  try {
    await admin.listen();
  } catch (err) {
    fail(1, messageOf(err));
  }
  // process.exit closes no server, and a Unix socket file left behind would make the
  // next start fail: remove it on the way out, whatever the exit.
  process.on('exit', () => admin.removeSocketFile());
  return admin;
}

function logAdminListening(admin: AdminServer, log: Logger): void {
  const address = admin.address();
  log.info('admin listening', {
    address: address === null ? admin.listenAddress : formatAddress(address.address, address.port),
  });
}

// SIGUSR1 writes what is going on to the log: the counters, then every live connection.
function logSnapshot(proxy: Supervisor): void {
  const stats = proxy.stats();
  proxy.log.info('snapshot', {
    connections_active: stats.active,
    connections_accepted: stats.accepted,
    bytes_to_upstream: stats.bytesToUpstream,
    bytes_to_client: stats.bytesToClient,
    uptime_ms: Math.round(proxy.uptimeMs()),
  });
  for (const c of proxy.connections()) proxy.log.info('live connection', connectionRecord(c));
}

/**
 * shutdownControl: `signal` is what SIGTERM/SIGINT do (the first drains, a second
 * closes everything at once), `drain` starts draining unless already, `now` closes
 * everything and exits. Draining stops accepting at once, lets open connections
 * finish within their shutdown timeout, then exits 0.
 */
function shutdownControl(proxy: Supervisor): {
  signal: (signal: NodeJS.Signals) => void;
  drain: (signal: string | undefined) => void;
  now: (signal: string | undefined) => void;
  /** draining: a shutdown has begun (so /readyz says 503). */
  draining: () => boolean;
} {
  let draining = false;
  const drain = (signal: string | undefined): void => {
    if (draining) return;
    draining = true;
    proxy.log.info('shutting down', { signal, connections: proxy.connections().length });
    proxy.close({ graceful: true }).then(
      () => {
        proxy.log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => fail(1, `shutdown failed: ${String(err)}`),
    );
  };
  const now = (signal: string | undefined): void => {
    // Do not wait for anything.
    proxy.log.info('closing all connections now', { signal });
    void proxy.close({ graceful: false });
    process.exit(0);
  };
  return {
    signal: (signal) => (draining ? now(signal) : drain(signal)),
    drain,
    now,
    draining: () => draining,
  };
}

/**
 * reloadOnSighup runs `reload` on SIGHUP, or says why not, and with `--watch-config`
 * also when the file's content changes (config/watch.ts). The outcome is logged where
 * it happens.
 */
async function reloadOnSighup(
  plan: Plan,
  log: Logger,
  reload: (() => Promise<unknown>) | null,
): Promise<void> {
  process.on('SIGHUP', () => {
    if (reload === null) log.warn('SIGHUP ignored: there is no --config file to reload');
    else reload().catch(() => {});
  });
  if (!plan.watchConfig || plan.reloadFrom === null || reload === null) return;
  const { ConfigWatch } = await import('./config/watch.js');
  try {
    new ConfigWatch({ file: plan.reloadFrom.file, log, onChange: () => reload().catch(() => {}) });
  } catch (err) {
    fail(1, messageOf(err));
  }
}

/**
 * reloadConfig re-reads the config file and applies it. A file with errors is
 * refused (logged here); reload() logs "config reloaded" or its own refusal.
 */
async function reloadConfig(proxy: Supervisor, from: ReloadSource): Promise<ReloadResult> {
  const { readConfigFile } = await import('./config/file.js');
  let settings: FileSettings;
  try {
    settings = readConfigFile(from.file, from.overrides);
  } catch (err) {
    proxy.log.error('config reload refused', { reason: messageOf(err) });
    return Promise.reject(err);
  }
  return proxy.reload({ listeners: settings.listeners });
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(1, err instanceof Error ? (err.stack ?? err.message) : String(err));
});
