/**
 * Several processes: `--workers N`. One primary process forks N workers with
 * `node:cluster`; each worker runs exactly the single-process path of the CLI
 * (`createProxy` + `listen`). Where Node.js and the kernel can (`reusePort`, Linux),
 * each worker binds its own listening socket on the same address and the kernel
 * spreads new connections over them (`reuseport`, src/worker-accept.ts); otherwise the
 * primary accepts and hands each new connection to the next worker in turn
 * (`handover`: node:cluster's round-robin). Either way the connection then lives in
 * that worker alone, so nothing per chunk crosses processes.
 *
 * The primary serves no connection itself. It
 * - replaces a worker that dies unexpectedly, and gives up (exit 1) when workers keep
 *   dying: more than `maxRestarts` deaths within `restartWindowMs`;
 * - passes the operator's signals on as messages (`shutdown`, `reload`, `snapshot`),
 *   since each worker holds its own connections, timers and configuration;
 * - answers the admin API by asking every worker over the IPC channel (`ask`, with a
 *   deadline) and merging the answers: see `ClusterView` in src/cluster-view.ts;
 * - decides the targets' health for all workers: see `ClusterHealth` in
 *   src/cluster-health.ts.
 *
 * Signals themselves are the CLI's business (src/cli.ts): it calls `shutdown`,
 * `reload` and `snapshot` here. The worker's side of the protocol is in
 * src/cluster-worker.ts, the messages both send in src/cluster-protocol.ts. A worker ignores SIGINT, SIGHUP and SIGUSR1 sent to it
 * directly (a terminal sends those to the whole process group, and the primary passes
 * them on); a SIGTERM sent to one worker drains that worker, which is then replaced.
 */
import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { ClusterHealth } from './cluster-health.js';
import {
  type FromWorker,
  isMessage,
  type RequestOf,
  type ToWorker,
  type WorkerAnswers,
  type WorkerRequest,
} from './cluster-protocol.js';
import { ClusterToxiproxy } from './cluster-toxiproxy.js';
import { ClusterView } from './cluster-view.js';
import { ProxyError } from './errors.js';
import type { Logger } from './log.js';
import type { ReloadResult } from './proxy-info.js';
import {
  chooseWorkerAccept,
  heldAddress,
  type TcpAddress,
  WORKER_ACCEPT_ENV,
  type WorkerAccept,
} from './worker-accept.js';

// ---------------------------------------------------------------- the primary

/** PrimaryOptions configure a ClusterPrimary. */
export interface PrimaryOptions {
  /** workers: how many worker processes to keep running (at least 2 makes sense). */
  workers: number;
  /** log: the primary's own logger (workers log for themselves). */
  log: Logger;
  /** requestTimeoutMs: how long a worker may take to answer a question. Default 2000. */
  requestTimeoutMs?: number;
  /** reloadTimeoutMs: how long a worker may take to apply a reload. Default 10000. */
  reloadTimeoutMs?: number;
  /** maxRestarts: unexpected deaths tolerated within `restartWindowMs`. Default 5. */
  maxRestarts?: number;
  /** restartWindowMs: default 10000. */
  restartWindowMs?: number;
  /**
   * accept: how workers get connections (src/worker-accept.ts). Default: `reuseport`
   * where `probeReusePort` finds it works, else `handover`. Asking for `reuseport`
   * where it does not work logs a warning and hands over.
   */
  accept?: WorkerAccept;
  /**
   * addresses: the TCP addresses the workers will bind. Under `reuseport` each (but
   * port 0) is bound alone once before any worker is forked (`bindAlone`); one that
   * cannot be fails the start like a worker's listen error. Default: none.
   */
  addresses?: readonly TcpAddress[];
}

/**
 * WorkerStartError (code PROXY_ERR_WORKER): a worker could not start. `message` is
 * the worker's own one-line error, `status` the exit status it chose (1 or 2).
 */
export class WorkerStartError extends ProxyError {
  readonly status: 1 | 2;
  constructor(status: 1 | 2, message: string) {
    super('PROXY_ERR_WORKER', message);
    this.name = 'WorkerStartError';
    this.status = status;
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Slot is one worker process as the primary sees it. */
interface Slot {
  readonly worker: Worker;
  readonly id: number;
  readonly pid: number | undefined;
  /** ready: the worker listens and answers requests. */
  ready: boolean;
  /** failure: what the worker said when it could not start. */
  failure: { status: 1 | 2; message: string } | null;
  readonly pending: Map<number, Pending>;
}

type PrimaryState = 'idle' | 'starting' | 'running' | 'stopping';

/** How long workers told to stop at once get before they are killed. */
const KILL_AFTER_MS = 2000;

/** ClusterPrimary forks and keeps the workers, passes signals on, and asks them questions. */
export class ClusterPrimary {
  /** view is what the admin server reads: every worker's answers, merged. */
  readonly view: ClusterView;
  /** health decides the targets' states for every worker (cluster-health.ts). */
  readonly health: ClusterHealth;
  /** toxiproxy is the Toxiproxy API's host: its changes go to every worker (src/cluster-toxiproxy.ts). */
  readonly toxiproxy: ClusterToxiproxy;
  readonly #options: Required<Omit<PrimaryOptions, 'log' | 'accept'>>;
  readonly #asked: WorkerAccept | undefined;
  #accept: WorkerAccept = 'handover';
  readonly #log: Logger;
  readonly #slots = new Map<number, Slot>();
  /** #deaths: when workers died unexpectedly, within the restart window. */
  #deaths: number[] = [];
  #state: PrimaryState = 'idle';
  #seq = 0;
  #exitStatus = 0;
  #starting: { resolve: () => void; reject: (err: WorkerStartError) => void } | null = null;
  #finish: (status: number) => void = () => {};
  /** done resolves with the exit status once every worker has exited after a shutdown. */
  readonly done: Promise<number>;
  readonly #startedAtMs = performance.now();

  constructor(options: PrimaryOptions) {
    this.#log = options.log;
    this.#options = {
      workers: options.workers,
      requestTimeoutMs: options.requestTimeoutMs ?? 2000,
      reloadTimeoutMs: options.reloadTimeoutMs ?? 10_000,
      maxRestarts: options.maxRestarts ?? 5,
      restartWindowMs: options.restartWindowMs ?? 10_000,
      addresses: options.addresses ?? [],
    };
    this.#asked = options.accept;
    this.done = new Promise((resolve) => {
      this.#finish = resolve;
    });
    this.view = new ClusterView(this, options.log);
    this.health = new ClusterHealth(options.log, (id, states) => {
      const slots = id === null ? this.#slots.values() : [this.#slots.get(id)];
      for (const slot of slots)
        if (slot !== undefined) this.#send(slot, { type: 'proxy:health-states', states });
    });
    this.toxiproxy = new ClusterToxiproxy(this, () => this.view.listenerInfo(), options.log);
  }

  /**
   * start forks the workers and resolves once every one of them listens. If one
   * cannot start, the others are killed and it rejects with a WorkerStartError
   * carrying the first failure's message and exit status.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new ProxyError('PROXY_ERR_CLOSED', 'start: already started');
    this.#state = 'starting';
    this.#accept = await chooseWorkerAccept(this.#asked, this.#log);
    if (this.#accept === 'reuseport') await this.#checkAddresses();
    if (this.#state !== 'starting') return; // shut down while probing
    // For the listeners that take the handover path, Node's default scheduling stays:
    // round-robin on Linux (the primary accepts and hands connections out), unless
    // NODE_CLUSTER_SCHED_POLICY=none lets each worker accept from the shared socket.
    const started = new Promise<void>((resolve, reject) => {
      this.#starting = { resolve, reject };
    });
    for (let i = 0; i < this.#options.workers; i++) this.#fork();
    return started;
  }

  /** accept is how the workers get connections, as decided by start(). */
  get accept(): WorkerAccept {
    return this.#accept;
  }

  /** #checkAddresses rejects with a WorkerStartError (status 1) for an address held already. */
  async #checkAddresses(): Promise<void> {
    const held = await heldAddress(this.#options.addresses);
    if (held === null) return;
    this.#state = 'stopping';
    this.#exitStatus = 1;
    this.#finishIfEmpty();
    throw new WorkerStartError(1, held);
  }

  /** uptimeMs is the time since the primary started. */
  uptimeMs(): number {
    return performance.now() - this.#startedAtMs;
  }

  /** ready: every worker has started listening, and no shutdown has begun (`/readyz`). */
  get ready(): boolean {
    return this.#state === 'running';
  }

  /** drained: every worker drained or undrained a target (ClusterView); the shared health follows. */
  drained(listener: string, address: string, drained: boolean): void {
    this.health.setDrained(listener, address, drained);
  }

  /** readyWorkers lists the ids of the workers that listen and answer, oldest first. */
  readyWorkers(): number[] {
    return [...this.#slots.values()].filter((s) => s.ready).map((s) => s.id);
  }

  /**
   * shutdown tells every worker to stop: `graceful` lets each drain its connections
   * under its listeners' shutdown timeouts; otherwise they close everything and exit
   * at once (and are killed if they have not after 2 s). `done` resolves once all
   * have exited.
   */
  shutdown(graceful: boolean, signal: string | undefined): void {
    if (this.#state === 'stopping' && graceful) return;
    this.#state = 'stopping';
    for (const slot of this.#slots.values()) {
      // A worker still starting has no connections and no message handler yet.
      if (slot.ready) this.#send(slot, { type: 'proxy:shutdown', graceful, signal });
      else slot.worker.process.kill('SIGKILL');
    }
    if (!graceful) {
      setTimeout(() => {
        for (const slot of this.#slots.values()) slot.worker.process.kill('SIGKILL');
      }, KILL_AFTER_MS).unref();
    }
    this.#finishIfEmpty();
  }

  /** snapshot asks every worker to log its counters and live connections (SIGUSR1). */
  snapshot(): void {
    for (const slot of this.#slots.values()) {
      if (slot.ready) this.#send(slot, { type: 'proxy:snapshot' });
    }
  }

  /** reload asks every worker to re-read the config file; see ClusterView.reload. */
  reload(): Promise<ReloadResult> {
    return this.view.reload();
  }

  /**
   * ask sends `request` to worker `id` and resolves with its answer. It rejects with
   * PROXY_ERR_WORKER if the worker is not ready, is gone before answering, or takes
   * longer than the request timeout; with the worker's own error if it refused.
   */
  ask<K extends WorkerRequest['kind']>(
    id: number,
    request: RequestOf<K>,
  ): Promise<WorkerAnswers[K]> {
    const slot = this.#slots.get(id);
    if (slot === undefined || !slot.ready) {
      return Promise.reject(new ProxyError('PROXY_ERR_WORKER', `worker ${id} is not running`));
    }
    const seq = ++this.#seq;
    const timeoutMs =
      request.kind === 'reload' ? this.#options.reloadTimeoutMs : this.#options.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        slot.pending.delete(seq);
        reject(
          new ProxyError(
            'PROXY_ERR_WORKER',
            `worker ${id} did not answer ${request.kind} within ${timeoutMs}ms`,
          ),
        );
      }, timeoutMs);
      slot.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#send(slot, { type: 'proxy:request', seq, request });
    });
  }

  #send(slot: Slot, message: ToWorker): void {
    // A worker that just died has a closed channel; its exit is handled in #onGone.
    if (slot.worker.isConnected()) slot.worker.send(message, () => {});
  }

  #fork(): void {
    // The worker reads the choice before it listens (src/cli.ts, runWorker).
    const worker = cluster.fork({ [WORKER_ACCEPT_ENV]: this.#accept });
    const slot: Slot = {
      worker,
      id: worker.id,
      pid: worker.process.pid,
      ready: false,
      failure: null,
      pending: new Map(),
    };
    this.#slots.set(slot.id, slot);
    worker.on('message', (message: unknown) => this.#onMessage(slot, message));
    worker.on('error', () => {}); // a send to a dying worker; its exit follows
    // Act once the process has exited and its channel is closed, so that every
    // message it sent before exiting (such as why it failed) has been read.
    let exit: [number | null, NodeJS.Signals | null] | null = null;
    let disconnected = false;
    const gone = (): void => {
      if (exit !== null && disconnected) this.#onGone(slot, exit[0], exit[1]);
    };
    worker.on('disconnect', () => {
      disconnected = true;
      gone();
    });
    worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      exit = [code, signal];
      gone();
    });
  }

  #onMessage(slot: Slot, message: unknown): void {
    if (!isMessage<FromWorker>(message)) return;
    switch (message.type) {
      case 'proxy:ready':
        slot.ready = true;
        this.#log.info('worker started', { worker: slot.id, pid: slot.pid });
        this.view.workerReady(slot.id);
        this.toxiproxy.workerReady(slot.id);
        if (this.#state === 'starting' && this.readyWorkers().length === this.#options.workers) {
          this.#state = 'running';
          this.#log.info('workers listening', {
            workers: this.#options.workers,
            accept: this.#accept,
          });
          this.#starting?.resolve();
          this.#starting = null;
        }
        return;
      case 'proxy:failed':
        slot.failure = { status: message.status, message: message.message };
        return;
      case 'proxy:answer':
      case 'proxy:refused': {
        const pending = slot.pending.get(message.seq);
        if (pending === undefined) return; // it timed out already
        slot.pending.delete(message.seq);
        clearTimeout(pending.timer);
        if (message.type === 'proxy:answer') pending.resolve(message.value);
        else pending.reject(rebuildError(message.code, message.message));
        return;
      }
      case 'proxy:health':
        this.health.receive(slot.id, message.report);
        return;
    }
  }

  #onGone(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    this.#slots.delete(slot.id);
    this.health.workerGone(slot.id);
    for (const pending of slot.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new ProxyError('PROXY_ERR_WORKER', `worker ${slot.id} exited`));
    }
    slot.pending.clear();
    const how = signal === null ? `status ${code}` : signal;
    if (this.#state === 'starting') {
      // One worker that cannot start means none can (same config, same addresses).
      this.#state = 'stopping';
      for (const other of this.#slots.values()) other.worker.process.kill('SIGKILL');
      const failure = slot.failure ?? {
        status: 1 as const,
        message: `worker ${slot.id} exited with ${how} while starting`,
      };
      this.#starting?.reject(new WorkerStartError(failure.status, failure.message));
      this.#starting = null;
      this.#exitStatus = failure.status;
      this.#finishIfEmpty();
      return;
    }
    if (this.#state === 'stopping') {
      if (signal !== null || (code !== 0 && code !== null)) {
        this.#log.warn('worker exited while stopping', { worker: slot.id, pid: slot.pid, how });
      }
      this.#finishIfEmpty();
      return;
    }
    if (signal === null && code === 0) {
      // It drained and stopped on its own (SIGTERM sent to it alone): not a crash.
      this.#log.info('worker stopped; starting another', { worker: slot.id, pid: slot.pid });
      this.#fork();
      return;
    }
    this.#log.warn('worker died', {
      worker: slot.id,
      pid: slot.pid,
      how,
      reason: slot.failure?.message,
    });
    const now = performance.now();
    this.#deaths = [...this.#deaths.filter((t) => now - t < this.#options.restartWindowMs), now];
    if (this.#deaths.length > this.#options.maxRestarts) {
      this.#log.error('workers keep dying; giving up', {
        deaths: this.#deaths.length,
        window_ms: this.#options.restartWindowMs,
      });
      this.#exitStatus = 1;
      this.shutdown(false, undefined);
      return;
    }
    this.#fork();
  }

  #finishIfEmpty(): void {
    if (this.#state === 'stopping' && this.#slots.size === 0) this.#finish(this.#exitStatus);
  }
}

/** rebuildError turns a worker's refusal back into an error with the same code and message. */
function rebuildError(code: string, message: string): Error {
  if (code.startsWith('PROXY_ERR_')) {
    return new ProxyError(code as ProxyError['code'], message);
  }
  return Object.assign(new Error(message), { code });
}
