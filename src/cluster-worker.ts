/**
 * The worker's side of `--workers N` (the primary's is src/cluster.ts): answer the
 * primary's questions from this process's proxy, act on the signals it passes on,
 * tell it why this worker could not start, and tag this worker's log lines.
 */
import cluster from 'node:cluster';
import type { ConnectionHistograms } from './admin/metrics.js';
import {
  type FromWorker,
  isMessage,
  type ToWorker,
  type WorkerAnswers,
  type WorkerRequest,
} from './cluster.js';
import { errorCode } from './errors.js';
import type { ReloadResult, TcpProxy } from './index.js';
import type { LogFormat } from './log.js';

/** workerId is this process's worker id (1, 2, ...) when the primary forked it, else undefined. */
export function workerId(): number | undefined {
  return cluster.isWorker ? cluster.worker?.id : undefined;
}

/** WorkerHooks are what a worker does when the primary passes on a signal. */
export interface WorkerHooks {
  /** shutdown: SIGTERM/SIGINT at the primary (`graceful`), or a second one (not). */
  shutdown(graceful: boolean, signal: string | undefined): void;
  /** reload: SIGHUP at the primary, or POST /api/reload; re-read the config file. */
  reload(): Promise<ReloadResult>;
  /** snapshot: SIGUSR1 at the primary; log the counters and live connections. */
  snapshot(): void;
}

/**
 * serveWorker answers the primary's messages from `proxy` (a listening proxy) and
 * tells the primary this worker is ready. `histograms` are this worker's latency
 * histograms, when the admin server runs.
 */
export function serveWorker(
  proxy: TcpProxy,
  hooks: WorkerHooks,
  histograms: ConnectionHistograms | undefined,
): void {
  process.on('message', (message: unknown) => {
    if (!isMessage<ToWorker>(message)) return;
    switch (message.type) {
      case 'proxy:shutdown':
        hooks.shutdown(message.graceful, message.signal);
        return;
      case 'proxy:snapshot':
        hooks.snapshot();
        return;
      case 'proxy:request':
        answer(proxy, hooks, histograms, message.request).then(
          (value) => sendToPrimary({ type: 'proxy:answer', seq: message.seq, value }),
          (err: unknown) =>
            sendToPrimary({
              type: 'proxy:refused',
              seq: message.seq,
              code: errorCode(err),
              message: err instanceof Error ? err.message : String(err),
            }),
        );
        return;
    }
  });
  sendToPrimary({ type: 'proxy:ready' });
}

async function answer(
  proxy: TcpProxy,
  hooks: WorkerHooks,
  histograms: ConnectionHistograms | undefined,
  request: WorkerRequest,
): Promise<WorkerAnswers[WorkerRequest['kind']]> {
  switch (request.kind) {
    case 'listeners':
      return proxy.listenerInfo();
    case 'connections':
      return proxy.connections();
    case 'histograms':
      return histograms === undefined ? [] : histograms.registry.getMetricsAsJSON();
    case 'close':
      return proxy.closeConnection(request.id, { reset: request.reset });
    case 'drain':
      return proxy.setTargetDrained(request.listener, request.address, request.drained);
    case 'reload':
      return hooks.reload();
  }
}

function sendToPrimary(message: FromWorker): void {
  // The channel closes when the primary goes away; then the cluster ends this process.
  if (process.connected) process.send?.(message, undefined, {}, () => {});
}

/**
 * reportStartFailure tells the primary why this worker cannot start (the one line
 * the primary prints), just before the worker exits with `status`. The primary
 * prints it once, however many workers fail alike.
 */
export function reportStartFailure(status: 1 | 2, message: string): void {
  // The write to the IPC pipe is attempted at once, so it is out before process.exit.
  sendToPrimary({ type: 'proxy:failed', status, message });
}

// Every worker writes to the same stderr. A write() of at most PIPE_BUF bytes to a
// pipe is atomic, so lines are gathered for up to 25 ms, as the logger does in one
// process (log.ts), but written in pieces of whole lines that stay under that size:
// lines of two workers never interleave in the middle.
const PIPE_BUF = 4096;
const pendingLines: string[] = [];
let pendingBytes = 0;
let flushScheduled = false;

function flushLines(): void {
  flushScheduled = false;
  if (pendingLines.length === 0) return;
  const text = pendingLines.join('');
  pendingLines.length = 0;
  pendingBytes = 0;
  try {
    process.stderr.write(text);
  } catch {
    // A broken stderr (EPIPE) must not take the worker down with it.
  }
}

function writeLine(line: string): void {
  const text = `${line}\n`;
  const bytes = Buffer.byteLength(text);
  if (pendingBytes + bytes > PIPE_BUF) flushLines();
  pendingLines.push(text);
  pendingBytes += bytes;
  if (!flushScheduled) {
    flushScheduled = true;
    setTimeout(flushLines, 25).unref();
  }
}

process.on('exit', flushLines);

/**
 * workerLogWriter writes a worker's log lines to stderr with its id added as the
 * last field (`worker=2`, or `"worker":2` in JSON), so lines from several processes
 * can be told apart.
 */
export function workerLogWriter(format: LogFormat, id: number): (line: string) => void {
  return format === 'json'
    ? (line) => writeLine(`${line.slice(0, -1)},"worker":${id}}`)
    : (line) => writeLine(`${line} worker=${id}`);
}
