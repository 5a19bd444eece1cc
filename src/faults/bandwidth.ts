/**
 * bandwidth: at most `rate` KB/s (1 KB = 1000 bytes, as Toxiproxy counts), 0 meaning
 * no limit. A piece of n bytes leaves n / rate ms after the one before it (or after it
 * arrived, if the toxic was idle: an idle toxic saves up no credit for a burst). Large
 * chunks go on in pieces of 100 ms worth of bytes, as in Toxiproxy.
 */
import type { ToxicEnv } from './env.js';
import { TimedQueue } from './timed-queue.js';
import type { ToxicOf } from './toxic.js';

/** BandwidthStage paces the bytes at `rate` KB/s. */
export class BandwidthStage extends TimedQueue {
  /** rate in bytes per millisecond (KB/s); 0: no limit. */
  readonly #rate: number;
  /** #sentMs: when the last piece queued is due. */
  #sentMs = Number.NEGATIVE_INFINITY;

  constructor(toxic: ToxicOf<'bandwidth'>, env: ToxicEnv) {
    super(toxic.name, env);
    this.#rate = toxic.attributes.rate;
  }

  protected schedule(chunk: Buffer, nowMs: number): void {
    if (this.#rate <= 0) {
      this.push(chunk, nowMs);
      return;
    }
    const pieceBytes = this.#rate * 100;
    if (this.#sentMs < nowMs) this.#sentMs = nowMs;
    for (let at = 0; at < chunk.length; at += pieceBytes) {
      const piece = chunk.length <= pieceBytes ? chunk : chunk.subarray(at, at + pieceBytes);
      this.#sentMs += piece.length / this.#rate;
      this.push(piece, this.#sentMs);
    }
  }
}
