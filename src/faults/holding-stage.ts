/**
 * HoldingStage: what the toxics that let nothing through (`timeout`, `reset_peer`)
 * share. Every chunk that reaches the stage is held, in order (`held` counts its
 * bytes, so the relay stops reading at STAGE_HOLD_BYTES); one timer, in the toxics'
 * TimerSet, ends the connection (`expire`); when the toxic is removed, `stop` cancels
 * the timer and hands back what was held, which then goes on in order, so no byte is
 * lost unless the connection is. A subclass says when the timer starts (`onStart`,
 * `onData`) and what `expire` does.
 */
import type { Stage, StageOutput } from '../stage.js';
import { Timer } from '../timer-set.js';
import type { ToxicEnv } from './env.js';

function holdingOnTimer(stage: HoldingStage): void {
  stage.expire();
}

/** HoldingStage holds every chunk until the toxic is removed, or its timer ends the connection. */
export abstract class HoldingStage implements Stage {
  readonly name: string;
  held = 0;
  readonly #env: ToxicEnv;
  readonly #timer: Timer<HoldingStage>;
  #output: StageOutput | null = null;
  #chunks: Buffer[] = [];

  constructor(name: string, env: ToxicEnv) {
    this.name = name;
    this.#env = env;
    this.#timer = new Timer<HoldingStage>(this, holdingOnTimer);
  }

  /** expire: the timer is due; end the connection (`closeConnection`). */
  abstract expire(): void;

  /** onStart: the stage has started on a connection. Default: nothing. */
  protected onStart(): void {}

  /** onData: bytes or the FIN reached the stage. Default: nothing. */
  protected onData(): void {}

  start(output: StageOutput): void {
    this.#output = output;
    this.onStart();
  }

  write(chunk: Buffer): void {
    if (this.#output === null) return;
    this.#chunks.push(chunk);
    this.held += chunk.length;
    this.onData();
  }

  /** end: the FIN is held too (the chain or the relay passes it on when the toxic goes). */
  end(): void {
    if (this.#output !== null) this.onData();
  }

  stop(): readonly Buffer[] {
    this.#env.timers.cancel(this.#timer);
    this.#output = null;
    const rest = this.#chunks;
    this.#chunks = [];
    this.held = 0;
    return rest;
  }

  /** expireIn schedules `expire` in `ms` ms (0: now, without the timer). */
  protected expireIn(ms: number): void {
    if (ms === 0) this.expire();
    else this.#env.timers.scheduleIn(this.#timer, ms);
  }

  /** closeConnection ends the connection: with a reset both ways, or with a FIN. */
  protected closeConnection(reset: boolean): void {
    this.#output?.close(reset);
  }
}
