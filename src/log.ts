/**
 * A small one-line logger: every event is one line on stderr, as text or JSON.
 *
 * Levels are numbers so that a disabled level costs one comparison: callers on hot
 * paths guard with `if (log.enabled('trace'))` before building the fields, so trace
 * logging costs nothing when it is off.
 *
 * Field names are snake_case and shared with the access record and the metrics
 * (`bytes_to_upstream`, `cause`, ...): see docs/design.md.
 */

/** LogLevel names, from the most to the least severe. `silent` turns logging off. */
export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
/** LogFormat: `text` (`time LEVEL msg key=value ...`) or `json` (one object per line). */
export type LogFormat = 'text' | 'json';
/** LogValue is one field's value; a list is written as JSON array, or comma-joined in text. */
export type LogValue = string | number | boolean | null | undefined | readonly string[];
/** LogFields are the key/value pairs of one record; `undefined` values are left out. */
export type LogFields = Readonly<Record<string, LogValue>>;

export const LOG_LEVELS: readonly LogLevel[] = [
  'silent',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
];

const severity: Readonly<Record<LogLevel, number>> = {
  silent: 0,
  error: 1,
  warn: 2,
  info: 3,
  debug: 4,
  trace: 5,
};

/** LoggerOptions: `level` defaults to `info`, `format` to `text`, `write` to stderr. */
export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /**
   * write receives one line without its newline. Default: stderr, gathered and written
   * together at most 25 ms after the first of them (and before exit).
   */
  write?: (line: string) => void;
}

// Lines for stderr are gathered and written together, FLUSH_AFTER_MS after the first of
// them: one write() for every connection closed in that time. A write per line, or per
// turn of the event loop (often one line), cost about 17 µs more CPU per connection in the
// churn benchmark (docs/performance.md). They are written at once when many are waiting,
// and before the process exits. The timer is unref'd: it never keeps the process alive.
const pendingLines: string[] = [];
const MAX_PENDING_LINES = 512;
const FLUSH_AFTER_MS = 25;
let flushScheduled = false;

function writeStderr(line: string): void {
  pendingLines.push(line);
  if (pendingLines.length >= MAX_PENDING_LINES) flushStderr();
  else if (!flushScheduled) {
    flushScheduled = true;
    setTimeout(flushStderr, FLUSH_AFTER_MS).unref();
  }
}

/** flushStderr writes every gathered log line now. */
export function flushStderr(): void {
  flushScheduled = false;
  if (pendingLines.length === 0) return;
  const text = `${pendingLines.join('\n')}\n`;
  pendingLines.length = 0;
  try {
    process.stderr.write(text);
  } catch {
    // A broken stderr (EPIPE) must not take the proxy down with it.
  }
}

process.on('exit', flushStderr);

/** Logger writes records at or above its level; it never throws. */
export class Logger {
  readonly level: LogLevel;
  readonly format: LogFormat;
  readonly #threshold: number;
  readonly #write: (line: string) => void;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? 'info';
    this.format = options.format ?? 'text';
    this.#threshold = severity[this.level];
    this.#write = options.write ?? writeStderr;
  }

  /** enabled tells whether a record at `level` would be written. */
  enabled(level: Exclude<LogLevel, 'silent'>): boolean {
    return severity[level] <= this.#threshold;
  }

  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  trace(msg: string, fields?: LogFields): void {
    this.log('trace', msg, fields);
  }

  log(level: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields): void {
    if (severity[level] > this.#threshold) return;
    const time = new Date().toISOString();
    const line =
      this.format === 'json'
        ? formatJson(time, level, msg, fields)
        : formatText(time, level, msg, fields);
    try {
      this.#write(line);
    } catch {
      // A broken stderr (EPIPE) must not take the proxy down with it.
    }
  }
}

function formatJson(time: string, level: string, msg: string, fields?: LogFields): string {
  return JSON.stringify({ time, level, msg, ...fields });
}

function formatText(time: string, level: string, msg: string, fields?: LogFields): string {
  let line = `${time} ${level.toUpperCase()} ${msg}`;
  if (fields === undefined) return line;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (value === undefined) continue;
    line += ` ${key}=${formatTextValue(value)}`;
  }
  return line;
}

function formatTextValue(value: Exclude<LogValue, undefined>): string {
  if (Array.isArray(value)) return formatTextValue(value.join(','));
  if (typeof value !== 'string') return String(value);
  // Quote only what would break `key=value` splitting: spaces, quotes, '=' or nothing at all.
  return value === '' || /[\s"=]/.test(value) ? JSON.stringify(value) : value;
}
