/**
 * HealthChecker: the active health checks of a listener's targets.
 *
 * Every `intervalMs` each target of the pool is probed: a connect (`connectTo`),
 * then, if configured, `send` is written and the answer must contain `expect`; all
 * within `timeoutMs`. A passed or failed probe goes to TargetHealth, which keeps the
 * rise/fall counters and marks targets down and up.
 *
 * One Probe per target, with one Timer in the shared TimerSet: it waits for the next
 * probe, then serves as the probe's deadline, then waits again; no native timer of
 * its own, and nothing per probe but its socket and an AbortController. The first
 * probes are spread over one interval (target i of n starts at i/n of it), so the
 * targets are not all probed at the same instant; each next probe starts one
 * interval after the previous one started (or at once, if that was longer ago).
 *
 * Probes never touch the clients' connections: their sockets are their own, and a
 * result only changes a target's state. `stop` (close, or a reload that turns checks
 * off) cancels every timer and destroys every probe socket at once; a result that
 * arrives later is ignored.
 */
import type { Socket } from 'node:net';
import { Timer, type TimerSet } from '../timer-set.js';
import { connectTo, type DialAddress, DialError } from './dial.js';
import type { TargetHealth } from './target-health.js';
import type { PoolTarget, TargetPool } from './target-pool.js';

/** HealthCheckOptions: probe every `intervalMs` (> 0), give up after `timeoutMs`; optional `send` and `expect`. */
export interface HealthCheckOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** send is written once connected. */
  readonly send?: string;
  /** expect must appear in the answer (read as UTF-8) for the probe to pass. */
  readonly expect?: string;
}

/** HEALTH_TIMEOUT_MS is the contract's default of `--health-timeout` (2 s). */
export const HEALTH_TIMEOUT_MS = 2000;

/** MAX_ANSWER_BYTES bounds what a probe reads while looking for `expect`. */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** ProbeResult is one probe's outcome: `reason` says how a failed one failed. */
export interface ProbeResult {
  readonly address: string;
  readonly ok: boolean;
  readonly reason?: string;
  /** startedAtMs: when the probe started, on the timer set's clock; `ms` is how long it took. */
  readonly startedAtMs: number;
  readonly ms: number;
}

/** HealthCheckEvents: `probed` hears every probe's result (debug logs, tests); optional. */
export interface HealthCheckEvents {
  probed?(result: ProbeResult): void;
}

type Phase = 'waiting' | 'connecting' | 'answering';

/** Probe is one target's check loop. */
class Probe<T extends DialAddress> {
  readonly entry: PoolTarget<T>;
  readonly checker: HealthChecker<T>;
  readonly timer: Timer<Probe<T>>;
  phase: Phase = 'waiting';
  /** round numbers the probes; a result of an older round (or after stop) is ignored. */
  round = 0;
  startedAtMs = 0;
  controller: AbortController | null = null;
  socket: Socket | null = null;
  answer = '';

  constructor(entry: PoolTarget<T>, checker: HealthChecker<T>) {
    this.entry = entry;
    this.checker = checker;
    this.timer = new Timer<Probe<T>>(this, onProbeTimer);
  }
}

function onProbeTimer<T extends DialAddress>(probe: Probe<T>): void {
  probe.checker.onTimer(probe);
}

/**
 * HealthChecker probes the targets of `pool` and reports to `health` (see the module
 * comment). It owns its probe sockets and timers; `stop` ends them all.
 */
export class HealthChecker<T extends DialAddress> {
  readonly pool: TargetPool<T>;
  readonly health: TargetHealth<T>;
  readonly timers: TimerSet;
  readonly options: HealthCheckOptions;
  readonly #events: HealthCheckEvents;
  readonly #probes = new Map<PoolTarget<T>, Probe<T>>();
  readonly #send: Buffer | null;
  #running = false;

  constructor(
    pool: TargetPool<T>,
    health: TargetHealth<T>,
    timers: TimerSet,
    options: HealthCheckOptions,
    events: HealthCheckEvents = {},
  ) {
    if (!(options.intervalMs > 0)) throw new RangeError('HealthChecker needs intervalMs > 0');
    this.pool = pool;
    this.health = health;
    this.timers = timers;
    this.options = options;
    this.#events = events;
    this.#send = options.send === undefined ? null : Buffer.from(options.send);
  }

  /** start schedules the first probe of every target, spread over one interval. */
  start(): void {
    this.#running = true;
    this.sync();
  }

  /**
   * sync follows the pool's targets after a reload (pool.update): a new target gets
   * a probe, spread as at start; a removed one's probe is stopped. Targets that
   * stay keep their probe and their counters.
   */
  sync(): void {
    if (!this.#running) return;
    const entries = this.pool.entries;
    const kept = new Set(entries);
    for (const [entry, probe] of this.#probes) {
      if (kept.has(entry)) continue;
      this.#end(probe);
      this.#probes.delete(entry);
    }
    entries.forEach((entry, i) => {
      if (this.#probes.has(entry)) return;
      const probe = new Probe(entry, this);
      this.#probes.set(entry, probe);
      this.timers.scheduleIn(probe.timer, (this.options.intervalMs * i) / entries.length);
    });
  }

  /** stop cancels every probe: no timer and no socket of the checker is left. */
  stop(): void {
    this.#running = false;
    for (const probe of this.#probes.values()) this.#end(probe);
    this.#probes.clear();
  }

  /** probing is the number of probes under way (connecting or waiting for an answer). */
  get probing(): number {
    let count = 0;
    for (const probe of this.#probes.values()) if (probe.phase !== 'waiting') count += 1;
    return count;
  }

  /** onTimer: a probe's timer fired: time for the next probe, or its deadline passed. */
  onTimer(probe: Probe<T>): void {
    const timeoutMs = this.options.timeoutMs;
    if (probe.phase === 'waiting') this.#begin(probe);
    else if (probe.phase === 'connecting')
      this.#finish(probe, false, `connect: no answer within ${timeoutMs} ms`);
    else this.#finish(probe, false, `no answer within ${timeoutMs} ms`);
  }

  #begin(probe: Probe<T>): void {
    probe.round += 1;
    const round = probe.round;
    probe.phase = 'connecting';
    probe.startedAtMs = this.timers.now();
    probe.answer = '';
    const controller = new AbortController();
    probe.controller = controller;
    this.timers.scheduleIn(probe.timer, this.options.timeoutMs);
    // Our deadline is the timer's, so connectTo gets none of its own (timeoutMs 0).
    connectTo(probe.entry.target, { timeoutMs: 0, signal: controller.signal }).then(
      (socket) => this.#onConnected(probe, round, socket),
      (err: unknown) => {
        if (probe.round !== round || probe.phase !== 'connecting') return;
        const code = err instanceof DialError ? err.code : String(err);
        this.#finish(probe, false, `connect: ${code}`);
      },
    );
  }

  #onConnected(probe: Probe<T>, round: number, socket: Socket): void {
    if (probe.round !== round || probe.phase !== 'connecting') {
      socket.destroy(); // it came too late: stopped or timed out meanwhile
      return;
    }
    probe.controller = null;
    probe.socket = socket;
    probe.phase = 'answering';
    const expect = this.options.expect;
    // Each listener first checks that the socket is still the probe's: #end drops it.
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (probe.socket === socket) this.#finish(probe, false, `read: ${err.code ?? err.message}`);
    });
    if (expect === undefined) {
      if (this.#send === null) this.#finish(probe, true);
      else
        socket.write(this.#send, (err) => {
          if (probe.socket === socket) this.#finish(probe, err == null, `write: ${err?.message}`);
        });
      return;
    }
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (probe.socket === socket) this.#onAnswer(probe, chunk, expect);
    });
    socket.on('end', () => {
      if (probe.socket === socket)
        this.#finish(probe, false, `answer ended without ${JSON.stringify(expect)}`);
    });
    if (this.#send !== null) socket.write(this.#send);
  }

  #onAnswer(probe: Probe<T>, chunk: string, expect: string): void {
    if (probe.phase !== 'answering') return;
    probe.answer += chunk;
    if (probe.answer.includes(expect)) this.#finish(probe, true);
    else if (probe.answer.length > MAX_ANSWER_BYTES)
      this.#finish(
        probe,
        false,
        `no ${JSON.stringify(expect)} in the first ${MAX_ANSWER_BYTES} bytes`,
      );
  }

  /** #finish ends a probe under way, reports it, and waits for the next one. */
  #finish(probe: Probe<T>, ok: boolean, reason?: string): void {
    if (probe.phase === 'waiting') return;
    this.#end(probe);
    const ms = this.timers.now() - probe.startedAtMs;
    this.#events.probed?.({
      address: probe.entry.address,
      ok,
      reason,
      startedAtMs: probe.startedAtMs,
      ms,
    });
    // The result first, then the change it causes: logs read in that order.
    if (ok) this.health.checkPassed(probe.entry);
    else this.health.checkFailed(probe.entry, reason ?? 'failed');
    // The pool may have dropped the target while the health callbacks ran (a reload).
    if (this.#running && this.#probes.get(probe.entry) === probe) {
      this.timers.schedule(probe.timer, probe.startedAtMs + this.options.intervalMs);
    }
  }

  /** #end cancels a probe's timer and drops its socket or connect attempt. */
  #end(probe: Probe<T>): void {
    this.timers.cancel(probe.timer);
    probe.phase = 'waiting';
    probe.round += 1;
    const controller = probe.controller;
    probe.controller = null;
    controller?.abort(); // connectTo destroys the socket it was connecting
    const socket = probe.socket;
    probe.socket = null;
    if (socket !== null) {
      socket.on('error', ignoreLateError);
      socket.destroy();
    }
  }
}

function ignoreLateError(): void {}
