/**
 * Command-line flags → options. Pure: it reads the argument list it is given and
 * never touches `process`. Every error names the flag and what was wrong with it,
 * so the CLI can print it as one line and exit 2.
 */
import { parseArgs } from 'node:util';
import { ProxyError } from '../errors.js';
import type { LogFormat, LogLevel } from '../log.js';
import {
  AddressError,
  checkHostName,
  formatParsed,
  isLoopbackHost,
  parseAddress,
} from './address.js';
import { type DefaultOverrides, type ListenerOptions, stripUndefined } from './config.js';
import { OptionValueError, type SettingKind } from './option-kinds.js';
import {
  type FlagName,
  MAX_WORKERS,
  OPTIONS,
  type OptionSpec,
  SETTING_NAMES,
  type SettingsInput,
  setting,
} from './options.js';

/** AdminFlags are `--admin ADDR`, `--admin-token-file FILE` and every `--admin-host NAME`, checked. */
export interface AdminFlags {
  readonly listen: string;
  readonly tokenFile: string | undefined;
  /** hosts: the `--admin-host` names (also added to a config file's admin section). */
  readonly hosts: readonly string[];
}

/** WorkerCount is `--workers`: a number of processes (1 to MAX_WORKERS), or `auto` (one per CPU core). */
export type WorkerCount = number | 'auto';

export { MAX_WORKERS } from './options.js';

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

/** PARSE_OPTIONS is the parseArgs table: every flag of the option table. */
const PARSE_OPTIONS = Object.fromEntries(
  Object.values(OPTIONS as Record<string, OptionSpec>).flatMap((spec) =>
    spec.flag === undefined
      ? []
      : [
          [
            spec.flag,
            {
              type: spec.kind.flagType,
              ...(spec.short === undefined ? {} : { short: spec.short }),
              ...(spec.kind.repeatable === true ? { multiple: true } : {}),
            },
          ],
        ],
  ),
) as Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/** HELP_COLUMN is where the help of each flag starts in `--help`. */
const HELP_COLUMN = 31;

/** USAGE is the text `--help` prints; the lines of the options come from the option table. */
export const USAGE = [
  'Usage:',
  '  l4proxy --listen [HOST:]PORT --target HOST:PORT [--target HOST:PORT ...] [options]',
  '  l4proxy --config FILE [options]',
  '  l4proxy check --config FILE       validate FILE, print what would run, start nothing',
  "  l4proxy --admin [HOST:]PORT       no listeners yet: add them over Toxiproxy's HTTP API",
  '',
  'Options:',
  ...Object.values(OPTIONS as Record<string, OptionSpec>).flatMap(usageLines),
  '',
  'DUR is a whole number with an optional unit ms, s, m or h (1500ms, 30s, 5m); a bare number is ms.',
  'Addresses may also be Unix domain sockets: unix:/path/to.sock.',
  'The admin server answers GET /healthz and /readyz without a token (for probes).',
  "With --config, the connection flags above override the file's defaults (not a listener's own values).",
].join('\n');

/** usageLines is a flag's line in `--help` (more than one if its help has a `\n`). */
function usageLines(spec: OptionSpec): string[] {
  if (spec.flag === undefined || spec.help === undefined) return [];
  const metavar = spec.metavar ?? spec.kind.metavar;
  const names = `${spec.short === undefined ? '    ' : `-${spec.short}, `}--${spec.flag}`;
  const [first = '', ...more] = spec.help.split('\n');
  const flag = `  ${names}${metavar === '' ? '' : ` ${metavar}`}`;
  const column = ' '.repeat(HELP_COLUMN);
  return [`${flag.padEnd(HELP_COLUMN - 1)} ${first}`, ...more.map((line) => `${column}${line}`)];
}

function usageError(message: string): ProxyError {
  return new ProxyError('PROXY_ERR_INVALID_CONFIG', message);
}

/** parseArgv turns `process.argv.slice(2)` into a CliCommand, or throws a one-line ProxyError. */
export function parseArgv(argv: readonly string[]): CliCommand {
  let values: FlagValues;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgsStrict(argv));
  } catch (err) {
    throw usageError(describeParseError(err, argv));
  }
  const text = (flag: FlagName) => stringFlag(values, flag);
  if (values['help'] === true) return { kind: 'help' };
  if (values['version'] === true) return { kind: 'version' };
  const adminHosts = hostFlags(listFlag(values, 'admin-host'));
  const admin = adminFlags(text('admin'), text('admin-token-file'), adminHosts);
  const workers = workersFlag(text('workers'));
  const optional = {
    ...(admin === undefined ? {} : { admin }),
    ...(workers === undefined ? {} : { workers }),
  };
  const isCheck = positionals[0] === 'check';
  const extra = positionals[isCheck ? 1 : 0];
  if (extra !== undefined)
    throw usageError(`unexpected argument ${JSON.stringify(extra)} (see --help)`);

  const config = text('config');
  const watchConfig = values['watch-config'] === true;
  if (config !== undefined || isCheck) {
    if (config === undefined) throw usageError('check needs --config FILE');
    if (config === '') throw usageError('--config needs a file name');
    if (text('listen') !== undefined || values['target'] !== undefined) {
      throw usageError('--listen and --target cannot be used with --config (put them in the file)');
    }
    return {
      kind: isCheck ? 'check' : 'config',
      configFile: config,
      overrides: stripUndefined(settingFlags(values)),
      logLevel: choiceFlag(values, 'logLevel'),
      logFormat: choiceFlag(values, 'logFormat'),
      adminHosts,
      watchConfig,
      ...optional,
    };
  }
  if (watchConfig)
    throw usageError('--watch-config needs --config FILE (there is no file to watch)');
  if (admin === undefined && adminHosts.length > 0)
    throw usageError('--admin-host needs --admin ADDR');

  const listen = text('listen');
  // `--admin` alone starts no listener, to be driven through the admin API (toxiproxy-server).
  if (admin !== undefined && listen === undefined && values['target'] === undefined) {
    return {
      kind: 'admin-only',
      admin,
      logLevel: choiceFlag(values, 'logLevel') ?? OPTIONS.logLevel.default,
      logFormat: choiceFlag(values, 'logFormat') ?? OPTIONS.logFormat.default,
      ...optional,
    };
  }
  if (listen === undefined) throw usageError('--listen is required (like --listen 127.0.0.1:8080)');
  checkAddress('--listen', listen, true);
  const targets = listFlag(values, 'target');
  if (targets.length === 0) throw usageError('--target is required (like --target 127.0.0.1:9000)');
  checkTargets(targets);

  const listener: ListenerOptions = { listen, targets, ...settingFlags(values) };
  return {
    kind: 'run',
    listener,
    logLevel: choiceFlag(values, 'logLevel') ?? OPTIONS.logLevel.default,
    logFormat: choiceFlag(values, 'logFormat') ?? OPTIONS.logFormat.default,
    ...optional,
  };
}

/** FlagValues are parseArgs' values: a string, a switch, or the list of a repeatable flag. */
type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

function stringFlag(values: FlagValues, flag: FlagName): string | undefined {
  const value = values[flag];
  return typeof value === 'string' ? value : undefined;
}

function listFlag(values: FlagValues, flag: FlagName): string[] {
  const value = values[flag];
  return Array.isArray(value) ? value.filter((v) => typeof v === 'string') : [];
}

/**
 * settingFlags reads every listener setting that has a flag, in table order (so the
 * first bad one is the one reported); a setting not given is there as undefined. A
 * repeatable setting's values are each read into a list, and the lists joined; a
 * switch given is read as `'true'`.
 */
function settingFlags(values: FlagValues): SettingsInput {
  const settings: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const { flag, kind } = setting(name);
    if (flag === undefined) continue;
    if (kind.flagType === 'boolean') {
      // A switch: the flag alone means true; not given, the file or the default decides.
      settings[name] = values[flag] === true ? true : undefined;
      continue;
    }
    settings[name] = kind.repeatable
      ? joinLists(listFlag(values, flag as FlagName).map((t) => parseFlagValue(flag, kind, t)))
      : parseFlagValue(flag, kind, settingText(values, flag as FlagName, kind));
  }
  return settings as SettingsInput;
}

/** settingText is a setting flag's text: its value, or `'true'` for a switch that is given. */
function settingText(
  values: FlagValues,
  flag: FlagName,
  kind: SettingKind<unknown>,
): string | undefined {
  if (kind.flagType === 'boolean') return values[flag] === true ? 'true' : undefined;
  return stringFlag(values, flag);
}

function joinLists(lists: unknown[]): unknown[] | undefined {
  return lists.length === 0 ? undefined : lists.flatMap((l) => l as unknown[]);
}

function parseFlagValue<T>(
  flag: string,
  kind: SettingKind<T, unknown>,
  text: string | undefined,
): T | undefined {
  if (text === undefined) return undefined;
  if (kind.parseFlag === undefined) throw new Error(`--${flag}: its kind reads no flag`);
  try {
    return kind.parseFlag(text);
  } catch (err) {
    if (err instanceof OptionValueError) throw usageError(`--${flag}: ${err.message}`);
    throw err;
  }
}

/** choiceFlag reads `--log-level` or `--log-format`; undefined when not given. */
function choiceFlag<N extends 'logLevel' | 'logFormat'>(
  values: FlagValues,
  name: N,
): (typeof OPTIONS)[N]['default'] | undefined {
  const spec = OPTIONS[name];
  return parseFlagValue(spec.flag, spec.kind, stringFlag(values, spec.flag)) as
    | (typeof OPTIONS)[N]['default']
    | undefined;
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
      `--workers: ${OPTIONS.workers.kind.patternMessage}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

function parseArgsStrict(argv: readonly string[]): { values: FlagValues; positionals: string[] } {
  return parseArgs({
    args: [...argv],
    options: PARSE_OPTIONS,
    strict: true,
    allowPositionals: true,
  });
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
  for (const [name, option] of Object.entries(PARSE_OPTIONS)) {
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
    const option = Object.entries(PARSE_OPTIONS).find(
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
