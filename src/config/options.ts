/**
 * The option table: every option of the command, the config file and the library,
 * declared once. An entry gives the flag, the config key (the flag in snake_case
 * unless `key` says otherwise), where the option may be written, its kind of value
 * (option-kinds.ts: parser, schema, display), its default, its one line of `--help`,
 * the description the JSON Schema carries, and whether a reload may change it.
 *
 * Derived from it: the `--help` text and the `parseArgs` table (args.ts), the types
 * `ListenerOptions`, `ListenerConfig`, `DefaultOverrides` and `ListenerInfo`, `DEFAULTS`
 * and the checks of a library caller's values (config.ts), the reading of a config
 * file's values and the messages of its schema errors (file.ts), the shipped JSON
 * Schema (json-schema.ts, at build time), `l4proxy check`'s lines (summary.ts), and the
 * per-listener options of `/api/listeners` and the status page (admin/).
 *
 * A listener setting (an entry with a `label`) is a per-connection option that the
 * command line, `defaults` and a listener may all set, a listener's own value winning:
 * adding one is one entry here plus the code that uses `config.<name>`. test/options.test.ts
 * walks the table and fails on any place that forgot one.
 *
 * Pure data and a few small functions: `--help` and `--version` load this module, so
 * it imports nothing heavy.
 */
import { LOG_LEVELS } from '../log.js';
import {
  address,
  choice,
  cidr,
  duration,
  file,
  healthProbe,
  hostName,
  type Kind,
  limit,
  list,
  optionalChoice,
  rate,
  type SettingKind,
  switchKind,
  switchSetting,
  target,
  text,
  tlsFiles,
  workerCount,
} from './option-kinds.js';
import { routesKind } from './routes-kind.js';
import { toxicsKind } from './toxics-kind.js';

/**
 * Place: where an option may be written. `cli`: the command line; `defaults`: the
 * config file's `defaults`; `listener`: a listener in the config file (and the
 * library's listener options); `top`: the top level of the config file; `admin`: the
 * config file's `admin` section.
 */
export type Place = 'cli' | 'defaults' | 'listener' | 'top' | 'admin';

/** OptionSpec is one entry of the option table. */
export interface OptionSpec {
  /** flag is the long flag without `--`; none for a config-only key. */
  readonly flag?: string;
  /** short is the one-letter flag without `-`. */
  readonly short?: string;
  /** key is the config file key, when it is not the flag in snake_case. */
  readonly key?: string;
  readonly places: readonly Place[];
  readonly kind: Kind;
  /**
   * required: a listener (or the admin section) must have it; `{ unless: KEY }`: unless
   * it has that other key instead (a listener's `targets`, unless it has `routes`).
   */
  readonly required?: boolean | { readonly unless: string };
  /** default is the value when the option is not given anywhere. */
  readonly default?: unknown;
  /** metavar replaces the kind's placeholder in `--help`. */
  readonly metavar?: string;
  /** help is the flag's line in `--help`; a `\n` continues it on the next line. */
  readonly help?: string;
  /** description is what the JSON Schema says of the config key (editors show it). */
  readonly description?: string;
  /** reload: a reload of the config file (SIGHUP) applies a new value. */
  readonly reload: boolean;
}

/** SettingSpec is a listener setting: the command line, `defaults` and a listener may set it. */
export interface SettingSpec<T = unknown, J = unknown> extends OptionSpec {
  readonly kind: SettingKind<T, J>;
  readonly default: T;
  /** label names it on the status page (`idle timeout`). */
  readonly label: string;
  /** brief names it in `l4proxy check`'s lines (`idle`). */
  readonly brief: string;
}

/** SETTING_PLACES: a listener setting's places; a config-only one leaves out `cli`. */
const SETTING_PLACES = ['cli', 'defaults', 'listener'] as const;

/**
 * BALANCE_POLICIES are the words of `--balance`, the default first; the same as
 * upstream/balance.ts's, written here so that `--help` loads no balancing code.
 */
const BALANCE_POLICIES = ['round-robin', 'least-connections', 'random-two', 'source-hash'] as const;

/** MAX_WORKERS is the largest `--workers` (and config file `workers`) accepted. */
export const MAX_WORKERS = 64;

/** OPTIONS is the option table, in the order of `--help` and of the schema's keys. */
export const OPTIONS = {
  name: {
    key: 'name',
    places: ['listener'],
    kind: text('NAME'),
    description: 'Unique name for logs and stats. Default: the listen string.',
    reload: true,
  },
  listen: {
    flag: 'listen',
    short: 'l',
    places: ['cli', 'listener'],
    kind: address('[HOST:]PORT'),
    required: true,
    help: 'where to accept; PORT alone means all interfaces; IPv6 as [::1]:8080',
    description: '[HOST:]PORT (PORT alone: all interfaces), [IPv6]:PORT, or unix:/path/to.sock.',
    reload: true,
  },
  targets: {
    flag: 'target',
    short: 't',
    key: 'targets',
    places: ['cli', 'listener'],
    kind: list(target, 1),
    required: { unless: 'routes' },
    help: 'an upstream; repeat for round-robin with failover',
    description:
      "The upstreams, tried in round-robin order with failover. A listener with routes has none of its own: its routes' targets.",
    reload: true,
  },
  routes: {
    key: 'routes',
    places: ['listener'],
    kind: routesKind,
    description:
      'Route by the TLS server name (SNI) without decrypting, instead of targets: [{ sni: NAME, targets: [...] }, ..., { targets: [...] }]. The ClientHello is read before any target is dialled; the whole stream is relayed unchanged. The last route, without sni, is the default (no name, or a name no route has).',
    reload: true,
  },
  idleTimeoutMs: {
    flag: 'idle-timeout',
    places: SETTING_PLACES,
    kind: duration,
    default: 0,
    help: 'close a connection idle for DUR (default 0: never)',
    description:
      'Close a connection with no bytes either way for this long. 0 (default) means never.',
    label: 'idle timeout',
    brief: 'idle',
    reload: true,
  },
  halfCloseTimeoutMs: {
    flag: 'half-close-timeout',
    places: SETTING_PLACES,
    kind: duration,
    default: 0,
    help: 'close a half-closed connection idle for DUR (default 0: idle timeout applies)',
    description:
      'Once one side sent FIN, close after this long without bytes. 0 (default): the idle timeout applies.',
    label: 'half-close timeout',
    brief: 'half-close',
    reload: true,
  },
  connectTimeoutMs: {
    flag: 'connect-timeout',
    places: SETTING_PLACES,
    kind: duration,
    default: 10_000,
    help: 'give up on a target after DUR (default 10s)',
    description: 'Give up on a target after this long and try the next. Default 10s.',
    label: 'connect timeout',
    brief: 'connect',
    reload: true,
  },
  shutdownTimeoutMs: {
    flag: 'shutdown-timeout',
    places: SETTING_PLACES,
    kind: duration,
    default: 30_000,
    help: 'on SIGTERM/SIGINT, let connections finish for DUR (default 30s)',
    description:
      'On shutdown (or when a listener is removed), let connections finish for this long. Default 30s.',
    label: 'shutdown timeout',
    brief: 'shutdown',
    reload: true,
  },
  maxConnections: {
    flag: 'max-connections',
    places: SETTING_PLACES,
    kind: limit,
    default: Number.POSITIVE_INFINITY,
    help: 'at most N proxied connections at once (default: no limit)',
    description:
      'At most this many proxied connections at once; further clients are accepted and closed at once. Default: no limit.',
    label: 'max connections',
    brief: 'max connections',
    reload: true,
  },
  allow: {
    flag: 'allow',
    places: SETTING_PLACES,
    kind: list(cidr),
    default: [],
    help: 'accept only clients in this range (repeatable; like 10.0.0.0/8 or ::1)',
    description:
      'IP addresses or CIDR ranges (10.0.0.0/8, 2001:db8::/32) of the clients allowed; with any, a client outside all of them is refused (denied). IPv4-mapped clients match IPv4 ranges.',
    label: 'allow',
    brief: 'allow',
    reload: true,
  },
  deny: {
    flag: 'deny',
    places: SETTING_PLACES,
    kind: list(cidr),
    default: [],
    help: 'refuse clients in this range, even if allowed (repeatable)',
    description:
      'IP addresses or CIDR ranges of clients refused (denied), even when also in allow.',
    label: 'deny',
    brief: 'deny',
    reload: true,
  },
  maxConnectionsPerIp: {
    flag: 'max-connections-per-ip',
    places: SETTING_PLACES,
    kind: limit,
    default: Number.POSITIVE_INFINITY,
    help: 'at most N open connections from one client address (default: no limit)',
    description:
      'At most this many open connections from one client address; more are closed at once (rate_limited). Default: no limit.',
    label: 'max connections per IP',
    brief: 'per-IP connections',
    reload: true,
  },
  connectionRatePerIp: {
    flag: 'connection-rate-per-ip',
    places: SETTING_PLACES,
    kind: rate,
    default: null,
    help: 'at most N new connections from one client address per DUR (like 20/1s)',
    description:
      'At most N new connections from one client address per DUR, written N/DUR (20/1s, 600/1m; a token bucket); more are closed at once (rate_limited). Default: no limit.',
    label: 'connection rate per IP',
    brief: 'per-IP rate',
    reload: true,
  },
  acceptProxy: {
    flag: 'accept-proxy',
    places: SETTING_PLACES,
    kind: switchSetting,
    default: false,
    help: 'every client starts with a PROXY protocol header (v1 or v2); its source\nis the client address',
    description:
      'Every client must start with a PROXY protocol header, v1 or v2 (detected); its source address is the client address in logs, the admin API, access control and balancing. Default false.',
    label: 'accept PROXY header',
    brief: 'accept-proxy',
    reload: true,
  },
  sendProxy: {
    flag: 'send-proxy',
    places: SETTING_PLACES,
    kind: optionalChoice(['v1', 'v2'], 'VERSION'),
    default: null,
    help: 'write a PROXY protocol header (v1 or v2) to each target before any byte',
    description:
      'Write a PROXY protocol header of this version (v1 or v2) to each target before any relayed byte, with the real client address. Default: none.',
    label: 'send PROXY header',
    brief: 'send-proxy',
    reload: true,
  },
  proxyHeaderTimeoutMs: {
    flag: 'proxy-header-timeout',
    places: SETTING_PLACES,
    kind: duration,
    default: 5000,
    help: 'close a client that has not sent its whole PROXY header (or TLS\nClientHello, for SNI routing) within DUR (default 5s)',
    description:
      'Close a client whose PROXY header (with accept_proxy) or TLS ClientHello (SNI routes) is not complete within this long. Default 5s.',
    label: 'PROXY header timeout',
    brief: 'proxy header',
    reload: true,
  },
  tlsCert: {
    flag: 'tls-cert',
    places: SETTING_PLACES,
    kind: file,
    default: null,
    help: 'speak TLS to clients with this PEM certificate (and chain); needs --tls-key',
    description:
      'TLS termination: the PEM certificate (its chain after it) presented to clients; needs tls_key. Re-read on reload.',
    label: 'TLS certificate',
    brief: 'tls-cert',
    reload: true,
  },
  tlsKey: {
    flag: 'tls-key',
    places: SETTING_PLACES,
    kind: file,
    default: null,
    help: 'the PEM private key of --tls-cert',
    description: 'The PEM private key of tls_cert. Re-read on reload.',
    label: 'TLS key',
    brief: 'tls-key',
    reload: true,
  },
  tls: {
    key: 'tls',
    places: ['defaults', 'listener'],
    kind: tlsFiles,
    default: null,
    description:
      "TLS termination with several certificates: { certs: [{ cert, key }, ...] }, chosen by the client's SNI name, the first being the default. Re-read on reload.",
    label: 'TLS certificates',
    brief: 'tls',
    reload: true,
  },
  tlsClientCa: {
    flag: 'tls-client-ca',
    places: SETTING_PLACES,
    kind: file,
    default: null,
    help: 'require client certificates signed by a CA of this PEM file (mutual TLS)',
    description:
      'Mutual TLS: clients must present a certificate signed by a CA of this PEM file. Needs a certificate to terminate with.',
    label: 'TLS client CA',
    brief: 'client-ca',
    reload: true,
  },
  targetTls: {
    flag: 'target-tls',
    places: SETTING_PLACES,
    kind: switchSetting,
    default: false,
    help: 'speak TLS to the targets (verified against the system CAs unless --target-ca)',
    description: 'TLS origination: speak TLS to the targets. Default false.',
    label: 'TLS to targets',
    brief: 'target-tls',
    reload: true,
  },
  targetCa: {
    flag: 'target-ca',
    places: SETTING_PLACES,
    kind: file,
    default: null,
    help: "verify the targets' certificates against this PEM file (default: system CAs)",
    description:
      "With target_tls: verify the targets' certificates against the CAs of this PEM file instead of the system's.",
    label: 'target CA',
    brief: 'target-ca',
    reload: true,
  },
  targetServername: {
    flag: 'target-servername',
    places: SETTING_PLACES,
    kind: hostName,
    default: null,
    help: "the name sent (SNI) and verified with --target-tls (default: the target's host)",
    description:
      "With target_tls: the server name sent to the targets and checked in their certificates. Default: each target's host name.",
    label: 'target server name',
    brief: 'target-servername',
    reload: true,
  },
  targetInsecure: {
    flag: 'target-insecure',
    places: SETTING_PLACES,
    kind: switchSetting,
    default: false,
    help: "with --target-tls, do not verify the targets' certificates (warned at start)",
    description:
      "With target_tls: do not verify the targets' certificates (for tests only; logged as a warning). Default false.",
    label: 'target TLS unverified',
    brief: 'target-insecure',
    reload: true,
  },
  toxics: {
    key: 'toxics',
    places: ['listener'],
    kind: toxicsKind,
    description:
      "Toxics (fault injection, docs/faults.md) that act on the listener's connections from the start, as Toxiproxy's API takes them: [{ name, type, stream, toxicity, attributes }]. A reload that changes the list replaces the toxics the file gave; those added over the API stay.",
    reload: true,
  },
  balance: {
    flag: 'balance',
    places: SETTING_PLACES,
    kind: choice(BALANCE_POLICIES, 'POLICY'),
    default: 'round-robin',
    help:
      'round-robin, least-connections, random-two or source-hash\n' +
      '(default round-robin; each weighted)',
    description:
      'How a new connection picks its target: round-robin (default), least-connections, random-two or source-hash (a consistent hash of the client address). Each honours the weights; failover still tries the others.',
    label: 'balance',
    brief: 'balance',
    reload: true,
  },
  healthIntervalMs: {
    flag: 'health-interval',
    places: SETTING_PLACES,
    kind: duration,
    default: 0,
    help: 'check every target by connecting to it every DUR (default 0: off)',
    description:
      'Probe every target by connecting to it this often; 0 (default) means no active checks (failed client connects still mark a target down).',
    label: 'health interval',
    brief: 'health every',
    reload: true,
  },
  healthTimeoutMs: {
    flag: 'health-timeout',
    places: SETTING_PLACES,
    kind: duration,
    default: 2000,
    help: 'a check that takes longer than DUR fails (default 2s)',
    description: 'A health check not done within this long fails. Default 2s.',
    label: 'health timeout',
    brief: 'health timeout',
    reload: true,
  },
  healthRise: {
    flag: 'health-rise',
    places: SETTING_PLACES,
    kind: limit,
    default: 2,
    help: 'N passed checks in a row mark a down target up (default 2)',
    description: 'This many passed checks in a row mark a down target up. Default 2.',
    label: 'health rise',
    brief: 'rise',
    reload: true,
  },
  healthFall: {
    flag: 'health-fall',
    places: SETTING_PLACES,
    kind: limit,
    default: 3,
    help: 'N failed checks or connects in a row mark a target down (default 3)',
    description:
      'This many failed checks (or failed client connects) in a row mark an up target down. Default 3.',
    label: 'health fall',
    brief: 'fall',
    reload: true,
  },
  health: {
    key: 'health',
    places: ['defaults', 'listener'],
    kind: healthProbe,
    default: {},
    description:
      'What a health check does once connected: send writes a string, expect is a string the answer must contain. Default: connecting is enough. The timings are health_interval, health_timeout, health_rise and health_fall.',
    label: 'health check',
    brief: 'health check',
    reload: true,
  },
  queueTimeoutMs: {
    flag: 'queue-timeout',
    places: SETTING_PLACES,
    kind: duration,
    default: 0,
    help: 'over --max-connections, let a client wait up to DUR for a slot (default 0: none)',
    description:
      'When max_connections is reached, a new client waits up to this long for a free slot (first in, first out), then is closed with max_connections. 0 (default): closed at once.',
    label: 'queue timeout',
    brief: 'queue',
    reload: true,
  },
  logLevel: {
    flag: 'log-level',
    places: ['cli', 'defaults'],
    kind: choice(LOG_LEVELS.slice(1), 'LEVEL'),
    default: 'info',
    help: 'error, warn, info, debug or trace (default info)',
    description: 'Default info.',
    reload: false,
  },
  logFormat: {
    flag: 'log-format',
    places: ['cli', 'defaults'],
    kind: choice(['text', 'json'], 'FORMAT'),
    default: 'text',
    help: 'text or json (default text)',
    description: 'Default text.',
    reload: false,
  },
  config: {
    flag: 'config',
    short: 'c',
    places: ['cli'],
    kind: text('FILE'),
    help: 'listeners and targets from a YAML or JSON file; SIGHUP reloads it',
    reload: false,
  },
  watchConfig: {
    flag: 'watch-config',
    places: ['cli'],
    kind: switchKind,
    help:
      'also reload the --config file whenever its content changes (an edit,\n' +
      'a rename over it, a Kubernetes ConfigMap update)',
    reload: false,
  },
  admin: {
    flag: 'admin',
    key: 'listen',
    places: ['cli', 'admin'],
    kind: address('[HOST:]PORT'),
    required: true,
    help: 'serve the admin API, metrics and status page (loopback unless a token is set)',
    description: '[HOST:]PORT or unix:/path. Must be a loopback address unless token_file is set.',
    reload: false,
  },
  adminTokenFile: {
    flag: 'admin-token-file',
    key: 'token_file',
    places: ['cli', 'admin'],
    kind: text('FILE'),
    help: 'require this token (Authorization: Bearer) on every admin request',
    description:
      'A file holding the token that every request must send as Authorization: Bearer TOKEN. A relative path is relative to this config file.',
    reload: false,
  },
  adminHosts: {
    flag: 'admin-host',
    key: 'hosts',
    places: ['cli', 'admin'],
    kind: list(text('NAME')),
    help:
      'also answer admin requests for this Host name (repeatable; default:\n' +
      "only the admin's own address, localhost, 127.0.0.1 and [::1])",
    description:
      "Host names (no port) that admin requests may carry in the Host header, besides the admin's own address, localhost, 127.0.0.1 and [::1]; requests for any other name get 403. The --admin-host flags add to these.",
    reload: false,
  },
  workers: {
    flag: 'workers',
    places: ['cli', 'top'],
    kind: workerCount(MAX_WORKERS),
    default: 1,
    help: `run N processes sharing the listeners (1 to ${MAX_WORKERS}, or auto: one per core; default 1)`,
    description: `How many processes share the listeners (node:cluster): a whole number 1 to ${MAX_WORKERS}, or auto for one per CPU core. Default 1 (one process). The --workers flag overrides it.`,
    reload: false,
  },
  help: {
    flag: 'help',
    short: 'h',
    places: ['cli'],
    kind: switchKind,
    help: 'show this help',
    reload: false,
  },
  version: {
    flag: 'version',
    short: 'V',
    places: ['cli'],
    kind: switchKind,
    help: 'show the version',
    reload: false,
  },
} as const satisfies Record<string, OptionSpec | SettingSpec>;

type Table = typeof OPTIONS;

/** OptionName is the name of an option: its property in the library's options. */
export type OptionName = keyof Table;

/** SettingName is the name of a listener setting (`idleTimeoutMs`, `maxConnections`, ...). */
export type SettingName = {
  [K in OptionName]: Table[K] extends { readonly label: string } ? K : never;
}[OptionName];

/** FlagName is a long flag of the table, without `--`. */
export type FlagName = {
  [K in OptionName]: Table[K] extends { flag: infer F } ? F : never;
}[OptionName];

type ValueOf<K extends SettingName> = Table[K]['kind'] extends { fromFile(value: unknown): infer T }
  ? T
  : never;
type JsonOf<K extends SettingName> = Table[K]['kind'] extends { toJson(value: never): infer J }
  ? J
  : never;

/** ListenerSettings are a listener's settings, validated (durations in ms, no limit is Infinity). */
export type ListenerSettings = { readonly [K in SettingName]: ValueOf<K> };

/** SettingsInput are the settings a library caller may give a listener; each may be left out. */
export type SettingsInput = { [K in SettingName]?: ValueOf<K> };

/** SettingsJson are a listener's settings as `ListenerInfo` gives them (no limit is null). */
export type SettingsJson = { [K in SettingName]: JsonOf<K> };

/** SETTING_NAMES lists the listener settings in table order. */
export const SETTING_NAMES = Object.keys(OPTIONS).filter(
  (name) => 'label' in OPTIONS[name as OptionName],
) as SettingName[];

/** setting is the table entry of a listener setting, with its kind's types. */
export function setting(name: SettingName): SettingSpec {
  return OPTIONS[name] as SettingSpec;
}

/** configKey is an option's key in the config file: `key`, or the flag in snake_case. */
export function configKey(spec: OptionSpec): string {
  if (spec.key !== undefined) return spec.key;
  if (spec.flag === undefined) throw new Error('an option without a flag needs a key');
  return spec.flag.replace(/-/g, '_');
}

/** optionsIn lists the options that may be written at `place`, with their names, in table order. */
export function optionsIn(place: Place): [OptionName, OptionSpec][] {
  return (Object.entries(OPTIONS) as [OptionName, OptionSpec][]).filter(([, spec]) =>
    spec.places.includes(place),
  );
}

/** jsonKey is a setting's key in `/api/listeners`: the name in snake_case (`idle_timeout_ms`). */
export function jsonKey(name: SettingName): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** settingDefaults are the settings' defaults (exported as `DEFAULTS`). */
export function settingDefaults(): ListenerSettings {
  return Object.fromEntries(
    SETTING_NAMES.map((name) => [name, setting(name).default]),
  ) as ListenerSettings;
}

/** settingsJson gives each setting of `settings` as `/api/listeners` shows it. */
export function settingsJson(settings: ListenerSettings): SettingsJson {
  return Object.fromEntries(
    SETTING_NAMES.map((name) => [name, setting(name).kind.toJson(settings[name])]),
  ) as SettingsJson;
}
