#!/usr/bin/env node
/**
 * The `proxy` command: argv → options → createProxy() → listen, plus signals and
 * exit codes (see cli-contract.md in the docs). The only module that reads
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
import { dirname, resolve } from 'node:path';
import { formatAddress, formatParsed, parseAddress } from './config/address.js';
import { type AdminFlags, type CliCommand, parseArgv, USAGE } from './config/args.js';
import { type Config, resolveConfig } from './config/config.js';
import { formatDuration } from './config/duration.js';
import { type DefaultOverrides, type FileSettings, readConfigFile } from './config/file.js';
import { errorCode } from './errors.js';
import { AdminServer, createProxy, type ReloadResult, type TcpProxy, VERSION } from './index.js';
import type { LogFormat, LogLevel } from './log.js';

function fail(status: 1 | 2, message: string): never {
  process.stderr.write(`proxy: ${message}\n`);
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
      process.stdout.write(`proxy ${VERSION}\n`);
      return;
    case 'check':
      check(command.configFile, command.overrides);
      return;
    case 'run':
      await run(
        { listeners: [command.listener] },
        command.logLevel,
        command.logFormat,
        null,
        command.admin,
      );
      return;
    case 'config': {
      const settings = loadOrExit(command.configFile, command.overrides);
      const level = command.logLevel ?? settings.logLevel ?? 'info';
      const format = command.logFormat ?? settings.logFormat ?? 'text';
      // A token file named in the config file is relative to that file.
      const fileAdmin = settings.admin && {
        listen: settings.admin.listen,
        tokenFile:
          settings.admin.tokenFile === undefined
            ? undefined
            : resolve(dirname(command.configFile), settings.admin.tokenFile),
      };
      const source = { file: command.configFile, overrides: command.overrides };
      await run(settings, level, format, source, command.admin ?? fileAdmin);
      return;
    }
  }
}

function loadOrExit(file: string, overrides: DefaultOverrides): FileSettings {
  try {
    return readConfigFile(file, overrides);
  } catch (err) {
    fail(2, messageOf(err));
  }
}

/** check validates a config file like `nginx -t`: a summary on stdout, exit 0, or one error line, exit 2. */
function check(file: string, overrides: DefaultOverrides): void {
  const settings = loadOrExit(file, overrides);
  let config: Config;
  try {
    config = resolveConfig(settings.listeners);
  } catch (err) {
    fail(2, `${file}: ${messageOf(err)}`);
  }
  const lines = [`${file}: ok, ${config.listeners.length} listener(s)`];
  for (const l of config.listeners) {
    const targets = l.targets
      .map((t) => (t.weight === 1 ? t.address : `${t.address} (weight ${t.weight})`))
      .join(', ');
    const limit = Number.isFinite(l.maxConnections) ? String(l.maxConnections) : 'none';
    lines.push(
      `  ${l.name}: ${formatListen(l.listen)} -> ${targets}`,
      `    idle ${formatDuration(l.idleTimeoutMs)}, half-close ${formatDuration(l.halfCloseTimeoutMs)}, ` +
        `connect ${formatDuration(l.connectTimeoutMs)}, shutdown ${formatDuration(l.shutdownTimeoutMs)}, ` +
        `max connections ${limit}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

function formatListen(listen: Config['listeners'][number]['listen']): string {
  return listen.path === undefined && listen.host === undefined
    ? `*:${listen.port}`
    : formatParsed(listen);
}

async function run(
  settings: Pick<FileSettings, 'listeners'>,
  level: LogLevel,
  format: LogFormat,
  reloadFrom: { file: string; overrides: DefaultOverrides } | null,
  adminFlags: AdminFlags | undefined,
): Promise<void> {
  let proxy: TcpProxy;
  try {
    proxy = createProxy({ listeners: settings.listeners, log: { level, format } });
  } catch (err) {
    fail(2, reloadFrom === null ? messageOf(err) : `${reloadFrom.file}: ${messageOf(err)}`);
  }
  try {
    await proxy.listen();
  } catch (err) {
    if (errorCode(err) === 'PROXY_ERR_LISTEN') fail(1, messageOf(err));
    throw err;
  }
  if (adminFlags !== undefined) await startAdmin(proxy, adminFlags, reloadFrom);
  handleShutdownSignals(proxy);
  handleReloadSignal(proxy, reloadFrom);
  handleSnapshotSignal(proxy);
}

async function startAdmin(
  proxy: TcpProxy,
  flags: AdminFlags,
  reloadFrom: { file: string; overrides: DefaultOverrides } | null,
): Promise<void> {
  let token: string | undefined;
  if (flags.tokenFile !== undefined) {
    try {
      token = readFileSync(flags.tokenFile, 'utf8').trim();
    } catch (err) {
      fail(2, `--admin-token-file ${flags.tokenFile}: cannot read it: ${errorCode(err)}`);
    }
    if (token === '') fail(2, `--admin-token-file ${flags.tokenFile}: the file is empty`);
  }
  let admin: AdminServer;
  try {
    admin = new AdminServer(proxy, {
      listen: parseAddress(flags.listen, { allowBarePort: true, allowPortZero: true }),
      token,
      reload: reloadFrom === null ? undefined : () => reloadConfig(proxy, reloadFrom),
    });
  } catch (err) {
    fail(2, messageOf(err));
  }
  try {
    await admin.listen();
  } catch (err) {
    await proxy.close({ graceful: false });
    fail(1, messageOf(err));
  }
  const address = admin.address();
  proxy.log.info('admin listening', {
    address: address === null ? flags.listen : formatAddress(address.address, address.port),
  });
}

// SIGUSR1 writes what is going on to the log: the counters, then every live connection.
function handleSnapshotSignal(proxy: TcpProxy): void {
  process.on('SIGUSR1', () => {
    const stats = proxy.stats();
    proxy.log.info('snapshot', {
      connections_active: stats.active,
      connections_accepted: stats.accepted,
      bytes_to_upstream: stats.bytesToUpstream,
      bytes_to_client: stats.bytesToClient,
      uptime_ms: Math.round(proxy.uptimeMs()),
    });
    for (const c of proxy.connections()) {
      proxy.log.info('live connection', {
        id: c.id,
        listener: c.listener,
        state: c.state,
        client: c.client,
        upstream: c.upstream,
        bytes_to_upstream: c.bytesToUpstream,
        bytes_to_client: c.bytesToClient,
        age_ms: Math.round(c.ageMs),
      });
    }
  });
}

function handleShutdownSignals(proxy: TcpProxy): void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals === 1) {
      proxy.log.info('shutting down', { signal, connections: proxy.connections().length });
      proxy.close({ graceful: true }).then(
        () => {
          proxy.log.info('stopped');
          process.exit(0);
        },
        (err: unknown) => fail(1, `shutdown failed: ${String(err)}`),
      );
    } else {
      // A second signal: do not wait for anything.
      proxy.log.info('closing all connections now', { signal });
      void proxy.close({ graceful: false });
      process.exit(0);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

// SIGHUP re-reads the config file and applies the difference (see Supervisor.reload).
// A file with errors is refused and the running configuration stays as it was.
function handleReloadSignal(
  proxy: TcpProxy,
  reloadFrom: { file: string; overrides: DefaultOverrides } | null,
): void {
  process.on('SIGHUP', () => {
    if (reloadFrom === null) {
      proxy.log.warn('SIGHUP ignored: there is no --config file to reload');
      return;
    }
    reloadConfig(proxy, reloadFrom).catch(() => {});
  });
}

/**
 * reloadConfig re-reads the config file and applies it. A file with errors is
 * refused (logged here); reload() logs "config reloaded" or its own refusal.
 */
function reloadConfig(
  proxy: TcpProxy,
  from: { file: string; overrides: DefaultOverrides },
): Promise<ReloadResult> {
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
