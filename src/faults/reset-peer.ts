/**
 * reset_peer: when the first bytes (or the FIN) reach the toxic, wait `timeout` ms
 * (0: not at all), then reset the connection both ways (RST; cause `toxic`), as
 * Toxiproxy's `reset_peer`. Until then what arrives is held; if the toxic is
 * removed first, it goes on, in order (Toxiproxy drops the first chunk, and cannot be
 * removed while it waits).
 */
import type { Stage, StageOutput } from '../stage.js';
import { Timer } from '../timer-set.js';
import type { ToxicEnv } from './env.js';
import type { ToxicOf } from './toxic.js';

function resetOnTimer(stage: ResetPeerStage): void {
  stage.reset();
}

/** ResetPeerStage resets the connection `timeout` ms after the first data. */
export class ResetPeerStage implements Stage {
  readonly name: string;
  held = 0;
  readonly #timeoutMs: number;
  readonly #env: ToxicEnv;
  readonly #timer: Timer<ResetPeerStage>;
  #output: StageOutput | null = null;
  #chunks: Buffer[] = [];
  #triggered = false;

  constructor(toxic: ToxicOf<'reset_peer'>, env: ToxicEnv) {
    this.name = toxic.name;
    this.#timeoutMs = toxic.attributes.timeout;
    this.#env = env;
    this.#timer = new Timer<ResetPeerStage>(this, resetOnTimer);
  }

  start(output: StageOutput): void {
    this.#output = output;
  }

  write(chunk: Buffer): void {
    if (this.#output === null) return;
    this.#chunks.push(chunk);
    this.held += chunk.length;
    this.#trigger();
  }

  end(): void {
    this.#trigger();
  }

  #trigger(): void {
    if (this.#triggered || this.#output === null) return;
    this.#triggered = true;
    if (this.#timeoutMs === 0) this.reset();
    else this.#env.timers.scheduleIn(this.#timer, this.#timeoutMs);
  }

  /** reset ends the connection with a reset both ways. */
  reset(): void {
    this.#output?.close(true);
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
