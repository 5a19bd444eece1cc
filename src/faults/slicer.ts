/**
 * slicer: each chunk is cut into pieces of about `average_size` bytes (± up to
 * `size_variation`), written one by one, `delay` µs apart (Toxiproxy's `slicer`,
 * with its way of cutting: halve around the middle, moved by up to the variation,
 * until a part is no bigger than average + variation). Every byte goes on, in order.
 */
import type { ToxicEnv } from './env.js';
import { TimedQueue } from './timed-queue.js';
import type { ToxicOf } from './toxic.js';

/** SlicerStage cuts chunks into small pieces, `delay` µs apart. */
export class SlicerStage extends TimedQueue {
  readonly #averageSize: number;
  readonly #sizeVariation: number;
  readonly #delayMs: number;
  /** #nextMs: the earliest time the next piece may go (the last one plus the delay). */
  #nextMs = Number.NEGATIVE_INFINITY;

  constructor(toxic: ToxicOf<'slicer'>, env: ToxicEnv) {
    super(toxic.name, env);
    this.#averageSize = toxic.attributes.average_size;
    this.#sizeVariation = toxic.attributes.size_variation;
    this.#delayMs = toxic.attributes.delay / 1000;
    // A timer cannot wait less than 1 ms: shorter delays are kept on average (the pieces
    // due are written together); longer ones separate every two pieces, however late a
    // timer fires.
    if (this.#delayMs >= 1) this.gapMs = this.#delayMs;
  }

  protected schedule(chunk: Buffer, nowMs: number): void {
    if (this.#nextMs < nowMs) this.#nextMs = nowMs;
    const bounds: number[] = [];
    this.#cut(0, chunk.length, bounds);
    for (let i = 0; i < bounds.length; i += 2) {
      this.push(chunk.subarray(bounds[i], bounds[i + 1]), this.#nextMs);
      this.#nextMs += this.#delayMs;
    }
  }

  /**
   * #cut appends the bounds of the pieces of [start, end) to `bounds`. Terminates
   * because size_variation < average_size (parseToxic): each half is non-empty.
   */
  #cut(start: number, end: number, bounds: number[]): void {
    if (end - start - this.#averageSize <= this.#sizeVariation) {
      bounds.push(start, end);
      return;
    }
    let mid = start + Math.floor((end - start) / 2);
    if (this.#sizeVariation > 0)
      mid += Math.floor(this.env.random() * 2 * this.#sizeVariation) - this.#sizeVariation;
    this.#cut(start, mid, bounds);
    this.#cut(mid, end, bounds);
  }
}
