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
   * write receives one line without its newline. Default: `writeStderr`, which gathers
   * lines for up to 25 ms and writes them together (and before exit).
   */
  write?: (line: string) => void;
}

/**
 * LineGatherer collects lines and writes them together, FLUSH_AFTER_MS after the first
 * one waiting: one write() for every connection closed in that time. A write per line,
 * or per turn of the event loop (often one line), cost about 17 µs more CPU per
 * connection in the churn benchmark (docs/performance.md). Each write is a piece of
 * whole lines of at most PIPE_BUF bytes (a longer line goes alone): a write that size
 * to a pipe is atomic, so processes sharing one stderr (`--workers`) never interleave
 * inside a line. The timer is unref'd: it never keeps the process alive.
 */
export class LineGatherer {
  readonly #sink: (text: string) => void;
  #pending: string[] = [];
  #pendingBytes = 0;
  #flushScheduled = false;
  readonly #flushNow = (): void => this.flush();
  /**
   * #timer: one unref'd Timeout, made for the first line and re-armed (refresh) for each
   * later piece. A new setTimeout and unref per piece cost two native calls more each
   * (the event loop's ref count) and, in a churn profile, 27 % of the access record's
   * CPU time (about 0.75 % of the process's).
   */
  #timer: NodeJS.Timeout | null = null;

  /** `sink` receives each piece (lines with their newlines); it may throw. */
  constructor(sink: (text: string) => void) {
    this.#sink = sink;
  }

  /** add queues one line, without its newline. */
  add(line: string): void {
    const text = `${line}\n`;
    const bytes = Buffer.byteLength(text);
    // The piece would grow past PIPE_BUF: write what waits; the timer stays armed.
    if (this.#pendingBytes + bytes > PIPE_BUF) this.#writePending();
    this.#pending.push(text);
    this.#pendingBytes += bytes;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      if (this.#timer === null) this.#timer = setTimeout(this.#flushNow, FLUSH_AFTER_MS).unref();
      else this.#timer.refresh();
    }
  }

  /** flush writes every pending line now. */
  flush(): void {
    this.#flushScheduled = false;
    this.#writePending();
  }

  #writePending(): void {
    if (this.#pending.length === 0) return;
    const text = this.#pending.join('');
    this.#pending = [];
    this.#pendingBytes = 0;
    try {
      this.#sink(text);
    } catch {
      // A broken stderr (EPIPE) must not take the proxy down with it.
    }
  }
}

/** PIPE_BUF is the largest write a pipe takes atomically (Linux, POSIX minimum 512). */
export const PIPE_BUF = 4096;
/** FLUSH_AFTER_MS is how long a line may wait for others before it is written. */
export const FLUSH_AFTER_MS = 25;

const stderrLines = new LineGatherer((text) => process.stderr.write(text));
let flushOnExit = false;

// The 'exit' handler that writes what still waits is added the first time it can be
// needed (a stderr Logger is created, or a line is written), not when this module
// loads: a library user who imports the package and logs nothing gets no handler.
function flushStderrOnExit(): void {
  if (flushOnExit) return;
  flushOnExit = true;
  process.on('exit', () => stderrLines.flush());
}

/** writeStderr is the default `write` of a Logger: one line, gathered (LineGatherer). */
export function writeStderr(line: string): void {
  flushStderrOnExit();
  stderrLines.add(line);
}

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
    if (this.#write === writeStderr) flushStderrOnExit();
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
    const time = isoTime(Date.now());
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

// The time of the last record's second, as toISOString spells it up to the dot
// ("2026-12-07T00:03:00."): records within one second only add their milliseconds.
// toISOString for each record cost about 1 µs, a quarter of an access record's formatting.
let isoSecond = Number.NaN;
let isoPrefix = '';

/** isoTime spells `ms` (since the epoch) as `Date.prototype.toISOString` does, from a per-second cache. */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    const iso = new Date(ms).toISOString();
    // Years beyond 9999 get a longer, signed spelling: not cached.
    if (iso.length !== 24) return iso;
    isoSecond = second;
    isoPrefix = iso.slice(0, 20);
  }
  const milli = ms - second * 1000;
  return `${isoPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

function formatJson(time: string, level: string, msg: string, fields?: LogFields): string {
  return JSON.stringify({ time, level, msg, ...fields });
}

function formatText(time: string, level: string, msg: string, fields?: LogFields): string {
  let line = `${time} ${level.toUpperCase()} ${msg}`;
  if (fields === undefined) return line;
  // for-in over a record literal: the keys in the same order as Object.keys, without its array.
  for (const key in fields) {
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
