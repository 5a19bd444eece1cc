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
} from './cluster-protocol.js';
import type { TcpProxy } from './create-proxy.js';
import { errorCode } from './errors.js';
import { type LogFormat, writeStderr } from './log.js';
import type { ReloadResult } from './proxy-info.js';
import {
  isToxiproxyProxy,
  localToxiproxyHost,
  runToxiproxyAction,
  type ToxiproxyAction,
  type ToxiproxyOutcome,
} from './toxiproxy-host.js';
import { HealthShare } from './upstream/shared-health.js';

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
 * histograms, when the admin server runs. The Toxiproxy API's changes run one at a
 * time, in the order the primary sent them.
 */
export function serveWorker(
  proxy: TcpProxy,
  hooks: WorkerHooks,
  histograms: ConnectionHistograms | undefined,
): void {
  const toxiproxy = toxiproxyRunner(proxy);
  process.on('message', (message: unknown) => {
    if (!isMessage<ToWorker>(message)) return;
    switch (message.type) {
      case 'proxy:shutdown':
        hooks.shutdown(message.graceful, message.signal);
        return;
      case 'proxy:snapshot':
        hooks.snapshot();
        return;
      case 'proxy:health-states':
        return; // shareHealth's
      case 'proxy:request':
        answer(proxy, hooks, histograms, toxiproxy, message.request).then(
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
  toxiproxy: (action: ToxiproxyAction) => Promise<ToxiproxyOutcome>,
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
    case 'toxiproxy':
      return toxiproxy(request.action);
  }
}

/**
 * shareHealth makes this worker's end of the shared target health (see
 * src/upstream/shared-health.ts) and starts taking the primary's states at once:
 * set its `start` as the proxy's `shareHealth` before `listen`, since the primary
 * answers a listener's first watch with its states.
 */
export function shareHealth(): HealthShare {
  const share = new HealthShare((report) => sendToPrimary({ type: 'proxy:health', report }));
  process.on('message', (message: unknown) => {
    if (isMessage<ToWorker>(message) && message.type === 'proxy:health-states')
      share.receive(message.states);
  });
  return share;
}

/** toxiproxyRunner runs the primary's Toxiproxy actions on `proxy`, one at a time. */
function toxiproxyRunner(proxy: TcpProxy): (action: ToxiproxyAction) => Promise<ToxiproxyOutcome> {
  const host = isToxiproxyProxy(proxy) ? localToxiproxyHost(proxy) : undefined;
  let last: Promise<unknown> = Promise.resolve();
  return (action) => {
    if (host === undefined) {
      const message = 'this worker cannot create listeners';
      return Promise.resolve({ ok: false, code: 'PROXY_ERR_WORKER', message, status: 501 });
    }
    const outcome = last.then(() => runToxiproxyAction(host, action));
    last = outcome;
    return outcome;
  };
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

/**
 * workerLogWriter writes a worker's log lines to stderr with its id added as the
 * last field (`worker=2`, or `"worker":2` in JSON), so lines from several processes
 * can be told apart. Every worker shares the one stderr; `writeStderr` writes whole
 * lines in pieces a pipe takes atomically, so lines never interleave.
 */
export function workerLogWriter(format: LogFormat, id: number): (line: string) => void {
  return format === 'json'
    ? (line) => writeStderr(`${line.slice(0, -1)},"worker":${id}}`)
    : (line) => writeStderr(`${line} worker=${id}`);
}
