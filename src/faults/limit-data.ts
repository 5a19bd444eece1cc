/**
 * limit_data: the first `bytes` bytes pass; then the connection is closed (cause
 * `toxic`), at once when the last of them has gone on, as Toxiproxy's `limit_data`
 * (with `bytes` 0, when the first chunk arrives). The count belongs to the connection:
 * an update of the toxic keeps it, as in Toxiproxy.
 */
import type { Stage, StageOutput } from '../stage.js';
import type { ToxicOf } from './toxic.js';

/** LimitDataStage passes `bytes` bytes, then closes the connection. */
export class LimitDataStage implements Stage {
  readonly name: string;
  readonly held = 0;
  readonly #limit: number;
  #output: StageOutput | null = null;
  /** transmitted: bytes passed on so far on this connection. */
  transmitted: number;

  /** `transmitted`: the count of the stage this one replaces (an update), else 0. */
  constructor(toxic: ToxicOf<'limit_data'>, transmitted = 0) {
    this.name = toxic.name;
    this.#limit = toxic.attributes.bytes;
    this.transmitted = transmitted;
  }

  start(output: StageOutput): void {
    this.#output = output;
  }

  write(chunk: Buffer): void {
    const output = this.#output;
    if (output === null) return;
    const left = this.#limit - this.transmitted;
    if (left > 0) {
      const piece = chunk.length <= left ? chunk : chunk.subarray(0, left);
      this.transmitted += piece.length;
      output.write(piece);
    }
    if (this.transmitted >= this.#limit) output.close(false);
  }

  end(): void {
    this.#output?.end();
  }

  stop(): readonly Buffer[] {
    this.#output = null;
    return [];
  }
}
