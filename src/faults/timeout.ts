/**
 * timeout: nothing passes; `timeout` ms after the toxic started on the connection,
 * the connection is closed (cause `toxic`). With `timeout` 0 it is never closed: the
 * bytes (and a FIN) are held until the toxic is removed, and then go on, in order.
 * Toxiproxy drops the bytes instead, and closes the connection when the toxic is
 * removed; holding them keeps the promise that no byte is lost unless the connection
 * is (the relay stops reading once the toxic holds STAGE_HOLD_BYTES). The holding is
 * HoldingStage's.
 */
import type { ToxicEnv } from './env.js';
import { HoldingStage } from './holding-stage.js';
import type { ToxicOf } from './toxic.js';

/** TimeoutStage holds everything, and closes the connection after `timeout` ms (0: never). */
export class TimeoutStage extends HoldingStage {
  readonly #timeoutMs: number;

  constructor(toxic: ToxicOf<'timeout'>, env: ToxicEnv) {
    super(toxic.name, env);
    this.#timeoutMs = toxic.attributes.timeout;
  }

  protected override onStart(): void {
    if (this.#timeoutMs > 0) this.expireIn(this.#timeoutMs);
  }

  /** expire: the timeout is over: close the connection (with a FIN, as Toxiproxy). */
  expire(): void {
    this.closeConnection(false);
  }
}
