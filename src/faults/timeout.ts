/**
 * timeout: nothing passes; `timeout` ms after the toxic started on the connection,
 * the connection is closed (cause `toxic`). With `timeout` 0 it is never closed: the
 * bytes (and a FIN) are held until the toxic is removed, and then go on, in order.
 * Toxiproxy drops the bytes instead, and closes the connection when the toxic is
 * removed; holding them keeps the promise that no byte is lost unless the connection
 * is (the relay stops reading once the toxic holds STAGE_HOLD_BYTES).
 */
import type { Stage, StageOutput } from '../stage.js';
import { Timer } from '../timer-set.js';
import type { ToxicEnv } from './env.js';
import type { ToxicOf } from './toxic.js';

function timeoutOnTimer(stage: TimeoutStage): void {
  stage.expire();
}

/** TimeoutStage holds everything, and closes the connection after `timeout` ms (0: never). */
export class TimeoutStage implements Stage {
  readonly name: string;
  held = 0;
  readonly #timeoutMs: number;
  readonly #env: ToxicEnv;
  readonly #timer: Timer<TimeoutStage>;
  #output: StageOutput | null = null;
  #chunks: Buffer[] = [];

  constructor(toxic: ToxicOf<'timeout'>, env: ToxicEnv) {
    this.name = toxic.name;
    this.#timeoutMs = toxic.attributes.timeout;
    this.#env = env;
    this.#timer = new Timer<TimeoutStage>(this, timeoutOnTimer);
  }

  start(output: StageOutput): void {
    this.#output = output;
    if (this.#timeoutMs > 0) this.#env.timers.scheduleIn(this.#timer, this.#timeoutMs);
  }

  write(chunk: Buffer): void {
    if (this.#output === null) return;
    this.#chunks.push(chunk);
    this.held += chunk.length;
  }

  /** end: the FIN is held too (the chain or the relay passes it on when the toxic goes). */
  end(): void {}

  /** expire: the timeout is over: close the connection (with a FIN, as Toxiproxy). */
  expire(): void {
    this.#output?.close(false);
  }

  stop(): readonly Buffer[] {
    this.#env.timers.cancel(this.#timer);
    this.#output = null;
    const rest = this.#chunks;
    this.#chunks = [];
    this.held = 0;
    return rest;
  }
}
