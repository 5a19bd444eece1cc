/**
 * Stages: what may stand between the two sockets of a connection, one per direction
 * (docs/design.md §6, "Stages"). Fault injection (issue #12: latency, bandwidth,
 * slicer, limit_data, timeout, reset_peer, slow_close) passes bytes through one.
 *
 * A plain connection has none: its reads go straight to the peer socket and pay
 * nothing for this module (the relay switches an endpoint's read callback when a
 * stage is put in or taken out; no chunk tests for a stage).
 *
 * How a stage sits in a direction:
 *
 *   source socket ──read──▶ StagePort.take ──▶ Stage.write ···held··· output.write ──▶ far socket
 *                  (FIN) ──▶ StagePort.takeEnd ──▶ Stage.end ···held··· output.end ──▶ far socket end()
 *
 * The stage decides when what it was given goes on: at once, later, split, or never
 * (and it may end the connection: output.close). The relay, not the stage, bounds
 * memory (stage-port.ts, STAGE_HOLD_BYTES): a slow reader at the far end holds the
 * source back through any stage.
 *
 * Taking a stage out (or putting another in its place) asks it for what it holds
 * (`stop`), writes that to the far socket in order, and passes on a FIN it was holding:
 * no byte is lost, duplicated or reordered.
 *
 * This module is the interface only (it imports nothing): fault injection implements
 * Stage; stage-port.ts plugs a stage into a connection's relay.
 */

/**
 * Stream names a direction as Toxiproxy does: `upstream` is client → target (the
 * client's bytes, `toUpstream`), `downstream` is target → client (`toClient`).
 */
export type Stream = 'upstream' | 'downstream';

/** StageOutput is where a stage sends what it lets through: towards the far socket. */
export interface StageOutput {
  /**
   * write passes `chunk` on to the far socket, after everything passed on before.
   * It returns false once the far socket holds its high-water mark; writing more is
   * allowed (the relay stops reading the source meanwhile). Ignored once the stage was
   * taken out, the FIN passed on or the connection closed.
   */
  write(chunk: Buffer): boolean;
  /** end passes the FIN on (the far socket's write side is shut after every byte written). */
  end(): void;
  /**
   * close ends the whole connection now, cause `toxic`: with a reset (RST) both ways
   * when `reset` is true (reset_peer), else with a FIN (limit_data, timeout).
   */
  close(reset: boolean): void;
}

/**
 * Stage is one direction's stage of one connection: an object per connection and
 * direction (it keeps that connection's state, its timers), never shared.
 *
 * Invariants the relay relies on: `held` counts the bytes the stage holds now and is
 * lowered before the stage writes them (or when it drops them on purpose, inside
 * write() or end()); after `stop()` the stage writes nothing and keeps no timer.
 */
export interface Stage {
  /** name appears in the trace and in the close record of a connection the stage closed. */
  readonly name: string;
  /** held is the number of bytes the stage holds now. */
  readonly held: number;
  /** start is called once, when the stage is put into a direction, before any write. */
  start(output: StageOutput): void;
  /** write: a chunk read from the source. The stage owns it (a copy, never reused). */
  write(chunk: Buffer): void;
  /** end: the source finished sending (FIN); no write follows. */
  end(): void;
  /**
   * stop: the stage is taken out, or its connection closed. Cancel every timer and
   * return what is held, oldest first; the relay writes it on (unless closed).
   */
  stop(): readonly Buffer[];
}

/** StageControl is how a connection's stages are chosen and changed (hooks, tests, faults). */
export interface StageControl {
  /** id is the connection's id, as the admin API and the access record show it. */
  readonly id: string;
  /** closed: the connection has closed (its stages are stopped; setStage is ignored). */
  readonly closed: boolean;
  /**
   * setStage puts `stage` into `stream` in place of the one there (which is stopped,
   * its bytes and FIN flushed on in order), or, with null, takes it out. Safe at any
   * time, on a live stream; on a closed connection the new stage is stopped at once.
   */
  setStage(stream: Stream, stage: Stage | null): void;
  /** stageOf is the stage in `stream` now, or null. */
  stageOf(stream: Stream): Stage | null;
}
