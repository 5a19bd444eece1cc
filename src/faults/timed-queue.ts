/**
 * TimedQueue: the common part of the toxics that delay bytes (latency, bandwidth,
 * slicer). Each chunk, or piece of one, gets a due time when it arrives; pieces go on
 * in arrival order once due (a later piece never overtakes an earlier one), and the
 * FIN goes on after the last of them. One Timer per stage, in the env's TimerSet, is
 * set for the first piece not yet due; a piece already due goes on at once, in the
 * same call.
 */
import type { Stage, StageOutput } from '../stage.js';
import { Timer } from '../timer-set.js';
import type { ToxicEnv } from './env.js';

const EMPTY = Buffer.alloc(0);

function queueOnTimer(queue: TimedQueue): void {
  queue.pump();
}

/** TimedQueue is a Stage that delivers each piece once its due time has come. */
export abstract class TimedQueue implements Stage {
  readonly name: string;
  held = 0;
  protected readonly env: ToxicEnv;
  #output: StageOutput | null = null;
  // Pieces and their due times (ms on env.timers' clock); #head is the first not sent.
  // Invariant: due times never decrease from #head on.
  #pieces: Buffer[] = [];
  #dueMs: number[] = [];
  #head = 0;
  #ended = false;
  #endPassed = false;
  /** #lastSentMs: when the last piece was written. */
  #lastSentMs = Number.NEGATIVE_INFINITY;
  readonly #timer: Timer<TimedQueue>;
  /**
   * gapMs: the least time between two pieces written, measured from when the first was
   * written (the slicer's delay, as Toxiproxy sleeps after each piece). 0: none, due
   * pieces go together.
   */
  protected gapMs = 0;

  constructor(name: string, env: ToxicEnv) {
    this.name = name;
    this.env = env;
    this.#timer = new Timer<TimedQueue>(this, queueOnTimer);
  }

  /** schedule gives `chunk` (or its pieces) due times through `push`; `nowMs` is the arrival. */
  protected abstract schedule(chunk: Buffer, nowMs: number): void;

  /** push queues a piece due at `dueMs`, never before the piece queued last. */
  protected push(piece: Buffer, dueMs: number): void {
    const last = this.#dueMs[this.#dueMs.length - 1];
    this.#pieces.push(piece);
    this.#dueMs.push(last !== undefined && last > dueMs ? last : dueMs);
    this.held += piece.length;
  }

  start(output: StageOutput): void {
    this.#output = output;
  }

  write(chunk: Buffer): void {
    if (this.#output === null) return;
    this.schedule(chunk, this.env.timers.now());
    this.pump();
  }

  end(): void {
    this.#ended = true;
    this.pump();
  }

  /** pump sends every piece that is due, then the FIN if it came and nothing is left. */
  pump(): void {
    const nowMs = this.env.timers.now();
    while (this.#head < this.#pieces.length) {
      const output = this.#output;
      if (output === null) return; // stopped, maybe by the write before (it closed the connection)
      let dueMs = this.#dueMs[this.#head] as number;
      if (this.gapMs > 0 && dueMs < this.#lastSentMs + this.gapMs)
        dueMs = this.#lastSentMs + this.gapMs;
      if (dueMs > nowMs) {
        if (!this.#timer.scheduled || this.#timer.deadline !== dueMs)
          this.env.timers.schedule(this.#timer, dueMs);
        return;
      }
      const piece = this.#pieces[this.#head] as Buffer;
      this.#pieces[this.#head] = EMPTY;
      this.#head += 1;
      this.held -= piece.length;
      this.#lastSentMs = nowMs;
      output.write(piece);
    }
    this.#pieces = [];
    this.#dueMs = [];
    this.#head = 0;
    if (this.#ended && !this.#endPassed && this.#output !== null) {
      this.#endPassed = true;
      this.#output.end();
    }
  }

  stop(): readonly Buffer[] {
    this.env.timers.cancel(this.#timer);
    this.#output = null;
    const rest = this.#pieces.slice(this.#head);
    this.#pieces = [];
    this.#dueMs = [];
    this.#head = 0;
    this.held = 0;
    return rest;
  }
}
