/**
 * Helpers for toxic stages without sockets: a clock moved by hand (for a TimerSet)
 * and a StageOutput that records what a stage passes on.
 */
import type { StageOutput } from '../../src/stage.js';
import type { Clock } from '../../src/timer-set.js';

/** ManualClock: time moves only through advance(), which fires the native timer when due. */
export class ManualClock implements Clock {
  #now = 0;
  #armed: { callback: () => void; due: number; id: number } | null = null;
  #nextId = 1;

  now(): number {
    return this.#now;
  }

  setTimer(callback: () => void, delayMs: number): unknown {
    const id = this.#nextId++;
    this.#armed = { callback, due: this.#now + delayMs, id };
    return id;
  }

  clearTimer(handle: unknown): void {
    if (this.#armed?.id === handle) this.#armed = null;
  }

  /** skip moves time on by `ms` without firing anything (a timer that fires late). */
  skip(ms: number): void {
    this.#now += ms;
  }

  /** advance moves time on by `ms`, firing the native timer each time it is due (bounded). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (let i = 0; i < 100_000; i++) {
      const armed = this.#armed;
      if (armed === null || armed.due > target) break;
      this.#armed = null;
      this.#now = Math.max(this.#now, armed.due);
      armed.callback();
    }
    this.#now = target;
  }
}

/** RecordingOutput records the chunks, the FIN and a close that a stage passes on. */
export class RecordingOutput implements StageOutput {
  readonly chunks: Buffer[] = [];
  /** at: the clock time of each chunk. */
  readonly at: number[] = [];
  ended = 0;
  closed: { reset: boolean } | null = null;
  readonly #clock: { now(): number } | null;

  constructor(clock: { now(): number } | null = null) {
    this.#clock = clock;
  }

  write(chunk: Buffer): boolean {
    if (this.ended > 0) throw new Error('write after end');
    this.chunks.push(Buffer.from(chunk));
    this.at.push(this.#clock?.now() ?? 0);
    return true;
  }

  end(): void {
    this.ended += 1;
  }

  close(reset: boolean): void {
    this.closed ??= { reset };
  }

  /** bytes: everything written, in order. */
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}
