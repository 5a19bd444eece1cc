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
import { formatParsed } from './config/address.js';
import { type CliCommand, parseArgv, USAGE } from './config/args.js';
import { type Config, resolveConfig } from './config/config.js';
import { formatDuration } from './config/duration.js';
import { type DefaultOverrides, type FileSettings, readConfigFile } from './config/file.js';
import { errorCode } from './errors.js';
import { createProxy, type TcpProxy, VERSION } from './index.js';
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
      await run({ listeners: [command.listener] }, command.logLevel, command.logFormat, null);
      return;
    case 'config': {
      const settings = loadOrExit(command.configFile, command.overrides);
      const level = command.logLevel ?? settings.logLevel ?? 'info';
      const format = command.logFormat ?? settings.logFormat ?? 'text';
      await run(settings, level, format, {
        file: command.configFile,
        overrides: command.overrides,
      });
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
  handleShutdownSignals(proxy);
  handleReloadSignal(proxy, reloadFrom);
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
    let settings: FileSettings;
    try {
      settings = readConfigFile(reloadFrom.file, reloadFrom.overrides);
    } catch (err) {
      proxy.log.error('config reload refused', { reason: messageOf(err) });
      return;
    }
    // reload() logs "config reloaded" or "config reload refused" itself.
    proxy.reload({ listeners: settings.listeners }).catch(() => {});
  });
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(1, err instanceof Error ? (err.stack ?? err.message) : String(err));
});
