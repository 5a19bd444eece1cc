/**
 * Command-line flags → options. Pure: it reads the argument list it is given and
 * never touches `process`. Every error names the flag and what was wrong with it,
 * so the CLI can print it as one line and exit 2.
 */
import { parseArgs } from 'node:util';
import { ProxyError } from '../errors.js';
import { LOG_LEVELS, type LogFormat, type LogLevel } from '../log.js';
import { AddressError, parseAddress } from './address.js';
import type { ListenerOptions } from './config.js';
import { DurationError, parseDuration } from './duration.js';

/** CliCommand is what the command line asks for. */
export type CliCommand =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | {
      readonly kind: 'run';
      readonly listener: ListenerOptions;
      readonly logLevel: LogLevel;
      readonly logFormat: LogFormat;
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
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/** USAGE is the text `--help` prints. */
export const USAGE = `Usage:
  proxy --listen [HOST:]PORT --target HOST:PORT [--target HOST:PORT ...] [options]

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
  -h, --help                   show this help
  -V, --version                show the version

DUR is a whole number with an optional unit ms, s, m or h (1500ms, 30s, 5m); a bare number is ms.`;

function usageError(message: string): ProxyError {
  return new ProxyError('PROXY_ERR_INVALID_CONFIG', message);
}

/** parseArgv turns `process.argv.slice(2)` into a CliCommand, or throws a one-line ProxyError. */
export function parseArgv(argv: readonly string[]): CliCommand {
  let values: ReturnType<typeof parseArgsStrict>['values'];
  try {
    ({ values } = parseArgsStrict(argv));
  } catch (err) {
    throw usageError(describeParseError(err));
  }
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };

  if (values.listen === undefined)
    throw usageError('--listen is required (like --listen 127.0.0.1:8080)');
  checkAddress('--listen', values.listen, true);
  const targets = values.target ?? [];
  if (targets.length === 0) throw usageError('--target is required (like --target 127.0.0.1:9000)');
  for (const target of targets) checkAddress('--target', target, false);

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
  };
}

function parseArgsStrict(argv: readonly string[]) {
  return parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false });
}

function describeParseError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof Error && 'code' in err ? err.code : undefined;
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted} (see --help)`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${JSON.stringify(quoted)} (see --help)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      // "Option '-l, --listen <value>' argument missing" or "... does not take an argument"
      const flag = /--[a-z-]+/.exec(quoted)?.[0] ?? quoted;
      return message.includes('missing') ? `${flag} needs a value` : `${flag} takes no value`;
    }
    default:
      return message;
  }
}

function checkAddress(flag: string, text: string, isListen: boolean): void {
  try {
    parseAddress(text, { allowBarePort: isListen, allowPortZero: isListen });
  } catch (err) {
    if (err instanceof AddressError) throw usageError(`${flag}: ${err.message}`);
    throw err;
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
