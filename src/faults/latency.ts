/**
 * latency: every chunk waits `latency` ms, plus or minus up to `jitter` ms, counted
 * from when it reached the toxic (Toxiproxy's `latency`). Chunks keep their order: one
 * drawn a shorter delay than the chunk before it goes right after that one. The FIN
 * follows the last chunk without a delay of its own.
 */
import type { ToxicEnv } from './env.js';
import { TimedQueue } from './timed-queue.js';
import type { ToxicOf } from './toxic.js';

/** LatencyStage delays each chunk by latency ± jitter ms. */
export class LatencyStage extends TimedQueue {
  readonly #latencyMs: number;
  readonly #jitterMs: number;

  constructor(toxic: ToxicOf<'latency'>, env: ToxicEnv) {
    super(toxic.name, env);
    this.#latencyMs = toxic.attributes.latency;
    this.#jitterMs = toxic.attributes.jitter;
  }

  protected schedule(chunk: Buffer, nowMs: number): void {
    let delayMs = this.#latencyMs;
    // As Toxiproxy: a whole number in [-jitter, jitter).
    if (this.#jitterMs > 0)
      delayMs += Math.floor(this.env.random() * 2 * this.#jitterMs) - this.#jitterMs;
    this.push(chunk, nowMs + delayMs);
  }
}
