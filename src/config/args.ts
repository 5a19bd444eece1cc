/**
 * Command-line flags → options. Pure: it reads the argument list it is given and
 * never touches `process`. Every error names the flag and what was wrong with it,
 * so the CLI can print it as one line and exit 2.
 */
import { parseArgs } from 'node:util';
import { ProxyError } from '../errors.js';
import { LOG_LEVELS, type LogFormat, type LogLevel } from '../log.js';
import {
  AddressError,
  checkHostName,
  formatParsed,
  isLoopbackHost,
  parseAddress,
} from './address.js';
import { type DefaultOverrides, type ListenerOptions, stripUndefined } from './config.js';
import { DurationError, parseDuration } from './duration.js';

/** AdminFlags are `--admin ADDR`, `--admin-token-file FILE` and every `--admin-host NAME`, checked. */
export interface AdminFlags {
  readonly listen: string;
  readonly tokenFile: string | undefined;
  /** hosts: the `--admin-host` names (also added to a config file's admin section). */
  readonly hosts: readonly string[];
}

/** WorkerCount is `--workers`: a number of processes (1 to MAX_WORKERS), or `auto` (one per CPU core). */
export type WorkerCount = number | 'auto';

/** MAX_WORKERS is the largest `--workers` (and config file `workers`) accepted. */
export const MAX_WORKERS = 64;

/** CliCommand is what the command line asks for. */
export type CliCommand =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | {
      readonly kind: 'run';
      readonly listener: ListenerOptions;
      readonly logLevel: LogLevel;
      readonly logFormat: LogFormat;
      readonly admin?: AdminFlags;
      /** workers is `--workers`, when given (else one process). */
      readonly workers?: WorkerCount;
    }
  | {
      /** admin-only: `--admin` alone, no listener until one is added over the API (toxiproxy-server). */
      readonly kind: 'admin-only';
      readonly logLevel: LogLevel;
      readonly logFormat: LogFormat;
      readonly admin: AdminFlags;
      readonly workers?: WorkerCount;
    }
  | {
      /** config: run from a config file; check: only validate it (`l4proxy check --config FILE`). */
      readonly kind: 'config' | 'check';
      readonly configFile: string;
      /** overrides are the connection flags given on the command line; they beat the file's defaults. */
      readonly overrides: DefaultOverrides;
      /** logLevel and logFormat are undefined unless given as flags (then the file decides). */
      readonly logLevel: LogLevel | undefined;
      readonly logFormat: LogFormat | undefined;
      readonly admin?: AdminFlags;
      /** adminHosts: `--admin-host` names without `--admin`, for the file's admin section. */
      readonly adminHosts: readonly string[];
      /** workers is `--workers`, when given; it beats the file's `workers`. */
      readonly workers?: WorkerCount;
      /** watchConfig is `--watch-config`: reload the file when it changes (config/watch.ts). */
      readonly watchConfig: boolean;
    };

const OPTIONS = {
  listen: { type: 'string', short: 'l' },
  target: { type: 'string', short: 't', multiple: true },
  'idle-timeout': { type: 'string' },
  'half-close-timeout': { type: 'string' },
  'connect-timeout': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  'max-connections': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  config: { type: 'string', short: 'c' },
  'watch-config': { type: 'boolean' },
  admin: { type: 'string' },
  'admin-token-file': { type: 'string' },
  'admin-host': { type: 'string', multiple: true },
  workers: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/** USAGE is the text `--help` prints. */
export const USAGE = `Usage:
  l4proxy --listen [HOST:]PORT --target HOST:PORT [--target HOST:PORT ...] [options]
  l4proxy --config FILE [options]
  l4proxy check --config FILE       validate FILE, print what would run, start nothing
  l4proxy --admin [HOST:]PORT       no listeners yet: add them over Toxiproxy's HTTP API

Options:
  -l, --listen [HOST:]PORT     where to accept; PORT alone means all interfaces; IPv6 as [::1]:8080
  -t, --target HOST:PORT       an upstream; repeat for round-robin with failover
      --idle-timeout DUR       close a connection idle for DUR (default 0: never)
      --half-close-timeout DUR close a half-closed connection idle for DUR (default 0: idle timeout applies)
      --connect-timeout DUR    give up on a target after DUR (default 10s)
      --shutdown-timeout DUR   on SIGTERM/SIGINT, let connections finish for DUR (default 30s)
      --max-connections N      at most N proxied connections at once (default: no limit)
      --log-level LEVEL        error, warn, info, debug or trace (default info)
      --log-format FORMAT      text or json (default text)
  -c, --config FILE            listeners and targets from a YAML or JSON file; SIGHUP reloads it
      --watch-config           also reload the --config file whenever its content changes (an edit,
                               a rename over it, a Kubernetes ConfigMap update)
      --admin [HOST:]PORT      serve the admin API, metrics and status page (loopback unless a token is set)
      --admin-token-file FILE  require this token (Authorization: Bearer) on every admin request
      --admin-host NAME        also answer admin requests for this Host name (repeatable; default:
                               only the admin's own address, localhost, 127.0.0.1 and [::1])
      --workers N              run N processes sharing the listeners (1 to 64, or auto: one per core; default 1)
  -h, --help                   show this help
  -V, --version                show the version

DUR is a whole number with an optional unit ms, s, m or h (1500ms, 30s, 5m); a bare number is ms.
Addresses may also be Unix domain sockets: unix:/path/to.sock.
The admin server answers GET /healthz and /readyz without a token (for probes).
With --config, the connection flags above override the file's defaults (not a listener's own values).`;

function usageError(message: string): ProxyError {
  return new ProxyError('PROXY_ERR_INVALID_CONFIG', message);
}

/** parseArgv turns `process.argv.slice(2)` into a CliCommand, or throws a one-line ProxyError. */
export function parseArgv(argv: readonly string[]): CliCommand {
  let values: ReturnType<typeof parseArgsStrict>['values'];
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgsStrict(argv));
  } catch (err) {
    throw usageError(describeParseError(err, argv));
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  const adminHosts = hostFlags(values['admin-host'] ?? []);
  const admin = adminFlags(values.admin, values['admin-token-file'], adminHosts);
  const workers = workersFlag(values.workers);
  const optional = {
    ...(admin === undefined ? {} : { admin }),
    ...(workers === undefined ? {} : { workers }),
  };
  const isCheck = positionals[0] === 'check';
  const extra = positionals[isCheck ? 1 : 0];
  if (extra !== undefined)
    throw usageError(`unexpected argument ${JSON.stringify(extra)} (see --help)`);

  if (values.config !== undefined || isCheck) {
    if (values.config === undefined) throw usageError('check needs --config FILE');
    if (values.config === '') throw usageError('--config needs a file name');
    if (values.listen !== undefined || values.target !== undefined) {
      throw usageError('--listen and --target cannot be used with --config (put them in the file)');
    }
    return {
      kind: isCheck ? 'check' : 'config',
      configFile: values.config,
      overrides: stripUndefined({
        idleTimeoutMs: durationFlag('--idle-timeout', values['idle-timeout']),
        halfCloseTimeoutMs: durationFlag('--half-close-timeout', values['half-close-timeout']),
        connectTimeoutMs: durationFlag('--connect-timeout', values['connect-timeout']),
        shutdownTimeoutMs: durationFlag('--shutdown-timeout', values['shutdown-timeout']),
        maxConnections: countFlag('--max-connections', values['max-connections']),
      }),
      logLevel: optionalChoice('--log-level', values['log-level'], LOG_LEVELS.slice(1)),
      logFormat: optionalChoice('--log-format', values['log-format'], ['text', 'json'] as const),
      adminHosts,
      watchConfig: values['watch-config'] === true,
      ...optional,
    };
  }
  if (values['watch-config'] === true)
    throw usageError('--watch-config needs --config FILE (there is no file to watch)');
  if (admin === undefined && adminHosts.length > 0)
    throw usageError('--admin-host needs --admin ADDR');

  // `--admin` alone starts no listener, to be driven through the admin API (toxiproxy-server).
  if (admin !== undefined && values.listen === undefined && values.target === undefined) {
    return {
      kind: 'admin-only',
      admin,
      logLevel: choiceFlag('--log-level', values['log-level'], LOG_LEVELS.slice(1), 'info'),
      logFormat: choiceFlag(
        '--log-format',
        values['log-format'],
        ['text', 'json'] as const,
        'text',
      ),
      ...optional,
    };
  }
  if (values.listen === undefined)
    throw usageError('--listen is required (like --listen 127.0.0.1:8080)');
  checkAddress('--listen', values.listen, true);
  const targets = values.target ?? [];
  if (targets.length === 0) throw usageError('--target is required (like --target 127.0.0.1:9000)');
  checkTargets(targets);

  const listener: ListenerOptions = {
    listen: values.listen,
    targets,
    idleTimeoutMs: durationFlag('--idle-timeout', values['idle-timeout']),
    halfCloseTimeoutMs: durationFlag('--half-close-timeout', values['half-close-timeout']),
    connectTimeoutMs: durationFlag('--connect-timeout', values['connect-timeout']),
    shutdownTimeoutMs: durationFlag('--shutdown-timeout', values['shutdown-timeout']),
    maxConnections: countFlag('--max-connections', values['max-connections']),
  };
  return {
    kind: 'run',
    listener,
    logLevel: choiceFlag('--log-level', values['log-level'], LOG_LEVELS.slice(1), 'info'),
    logFormat: choiceFlag('--log-format', values['log-format'], ['text', 'json'] as const, 'text'),
    ...optional,
  };
}

function adminFlags(
  listen: string | undefined,
  tokenFile: string | undefined,
  hosts: readonly string[],
): AdminFlags | undefined {
  if (listen === undefined) {
    if (tokenFile !== undefined) throw usageError('--admin-token-file needs --admin ADDR');
    return undefined;
  }
  checkAddress('--admin', listen, true);
  const parsed = parseAddress(listen, { allowBarePort: true, allowPortZero: true });
  if (tokenFile === undefined && parsed.path === undefined && !isLoopbackHost(parsed.host)) {
    throw usageError(
      `--admin ${listen}: a non-loopback admin address needs --admin-token-file (anyone could close connections)`,
    );
  }
  return { listen, tokenFile, hosts };
}

function hostFlags(names: readonly string[]): string[] {
  for (const name of names) {
    const problem = checkHostName(name);
    if (problem !== null) throw usageError(`--admin-host: ${problem}`);
  }
  return [...names];
}

function workersFlag(text: string | undefined): WorkerCount | undefined {
  if (text === undefined || text === 'auto') return text;
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw usageError(
      `--workers: expected a whole number 1 to ${MAX_WORKERS} or auto, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

function parseArgsStrict(argv: readonly string[]) {
  return parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true });
}

// parseArgs' own messages are long and quote the argument raw; say it in one line.
function describeParseError(err: unknown, argv: readonly string[]): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof Error && 'code' in err ? err.code : undefined;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${showArg(findUnknownOption(argv) ?? '?')} (see --help)`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const positional = findPositional(argv) ?? '?';
      return `unexpected argument ${JSON.stringify(positional)} (see --help)`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      // "Option '-l, --listen <value>' argument missing", "... argument is ambiguous"
      // (the next word looks like a flag), or "... does not take an argument".
      const flag = /--[a-z-]+/.exec(message)?.[0] ?? 'an option';
      return message.includes('does not take') ? `${flag} takes no value` : `${flag} needs a value`;
    }
    default:
      return showArg(message.split('\n')[0] ?? message);
  }
}

function findUnknownOption(argv: readonly string[]): string | undefined {
  const known = new Set<string>();
  for (const [name, option] of Object.entries(OPTIONS)) {
    known.add(`--${name}`);
    if ('short' in option) known.add(`-${option.short}`);
  }
  for (const arg of argv) {
    if (arg === '--') break;
    if (!arg.startsWith('-')) continue;
    const name = arg.startsWith('--') ? (arg.split('=')[0] ?? arg) : arg.slice(0, 2);
    if (!known.has(name)) return name;
  }
  return undefined;
}

function findPositional(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') return argv[i + 1];
    if (!arg.startsWith('-')) return arg;
    const name = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    const option = Object.entries(OPTIONS).find(
      ([long, o]) => long === name || ('short' in o && o.short === name),
    );
    if (option !== undefined && option[1].type === 'string') i += 1; // skip its value
  }
  return undefined;
}

// Print an argument as typed, unless it holds spaces, quotes or control characters.
function showArg(text: string): string {
  return /^[\x21-\x7e]+$/.test(text) && !/["']/.test(text) ? text : JSON.stringify(text);
}

function checkAddress(flag: string, text: string, isListen: boolean): void {
  try {
    parseAddress(text, { allowBarePort: isListen, allowPortZero: isListen });
  } catch (err) {
    if (err instanceof AddressError) throw usageError(`${flag}: ${err.message}`);
    throw err;
  }
}

/** checkTargets checks each --target and refuses one given twice (as config.ts does for options). */
function checkTargets(targets: readonly string[]): void {
  const seen = new Set<string>();
  for (const target of targets) {
    checkAddress('--target', target, false);
    const address = formatParsed(parseAddress(target));
    if (seen.has(address)) throw usageError(`--target: duplicate target ${address} (given twice)`);
    seen.add(address);
  }
}

function durationFlag(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseDuration(text);
  } catch (err) {
    if (err instanceof DurationError) throw usageError(`${flag}: ${err.message}`);
    throw err;
  }
}

function countFlag(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw usageError(`${flag}: expected a whole number >= 1, got ${JSON.stringify(text)}`);
  }
  return n;
}

function optionalChoice<T extends string>(
  flag: string,
  text: string | undefined,
  choices: readonly T[],
): T | undefined {
  return text === undefined ? undefined : choiceFlag(flag, text, choices, choices[0] as T);
}

function choiceFlag<T extends string>(
  flag: string,
  text: string | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (text === undefined) return fallback;
  const choice = choices.find((c) => c === text);
  if (choice === undefined) {
    throw usageError(`${flag}: expected one of ${choices.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return choice;
}
