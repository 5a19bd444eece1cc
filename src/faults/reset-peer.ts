/**
 * reset_peer: when the first bytes (or the FIN) reach the toxic, wait `timeout` ms
 * (0: not at all), then reset the connection both ways (RST; cause `toxic`), as
 * Toxiproxy's `reset_peer`. Until then what arrives is held (HoldingStage); if the
 * toxic is removed first, it goes on, in order (Toxiproxy drops the first chunk, and
 * cannot be removed while it waits).
 */
import type { ToxicEnv } from './env.js';
import { HoldingStage } from './holding-stage.js';
import type { ToxicOf } from './toxic.js';

/** ResetPeerStage resets the connection `timeout` ms after the first data. */
export class ResetPeerStage extends HoldingStage {
  readonly #timeoutMs: number;
  #triggered = false;

  constructor(toxic: ToxicOf<'reset_peer'>, env: ToxicEnv) {
    super(toxic.name, env);
    this.#timeoutMs = toxic.attributes.timeout;
  }

  protected override onData(): void {
    if (this.#triggered) return;
    this.#triggered = true;
    this.expireIn(this.#timeoutMs);
  }

  /** expire ends the connection with a reset both ways. */
  expire(): void {
    this.closeConnection(true);
  }
}
