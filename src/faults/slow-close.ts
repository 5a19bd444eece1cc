/**
 * slow_close: bytes pass at once; the FIN waits `delay` ms (Toxiproxy's `slow_close`
 * delays the close of the connection; here the FIN of this stream is delayed and
 * the other direction goes on meanwhile: half-close passes through).
 */
import type { Stage, StageOutput } from '../stage.js';
import { Timer } from '../timer-set.js';
import type { ToxicEnv } from './env.js';
import type { ToxicOf } from './toxic.js';

function slowCloseOnTimer(stage: SlowCloseStage): void {
  stage.passEnd();
}

/** SlowCloseStage passes bytes on at once and the FIN `delay` ms after it came. */
export class SlowCloseStage implements Stage {
  readonly name: string;
  readonly held = 0;
  readonly #delayMs: number;
  readonly #env: ToxicEnv;
  readonly #timer: Timer<SlowCloseStage>;
  #output: StageOutput | null = null;

  constructor(toxic: ToxicOf<'slow_close'>, env: ToxicEnv) {
    this.name = toxic.name;
    this.#delayMs = toxic.attributes.delay;
    this.#env = env;
    this.#timer = new Timer<SlowCloseStage>(this, slowCloseOnTimer);
  }

  start(output: StageOutput): void {
    this.#output = output;
  }

  write(chunk: Buffer): void {
    this.#output?.write(chunk);
  }

  end(): void {
    if (this.#delayMs === 0) this.passEnd();
    else this.#env.timers.scheduleIn(this.#timer, this.#delayMs);
  }

  /** passEnd: the delay is over, the FIN goes on. */
  passEnd(): void {
    this.#output?.end();
  }

  stop(): readonly Buffer[] {
    this.#env.timers.cancel(this.#timer);
    this.#output = null;
    return [];
  }
}
