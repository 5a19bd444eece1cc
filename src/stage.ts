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
 * memory: the source is read only while what the stage holds plus what the far socket
 * still has to write stays under STAGE_HOLD_BYTES, and it resumes once the far socket
 * has written everything and the stage holds less than that (Endpoint.resumeIfWritten,
 * which every write of the stage triggers through its callback). A slow reader at the
 * far end therefore holds the source back through any stage.
 *
 * Taking a stage out (or putting another in its place) asks it for what it holds
 * (`stop`), writes that to the far socket in order, and passes on a FIN it was holding:
 * no byte is lost, duplicated or reordered.
 */
import type { Endpoint, EndpointStage } from './endpoint.js';
import { followStage } from './relay.js';

/**
 * Stream names a direction as Toxiproxy does: `upstream` is client → target (the
 * client's bytes, `toUpstream`), `downstream` is target → client (`toClient`).
 */
export type Stream = 'upstream' | 'downstream';

/**
 * STAGE_HOLD_BYTES bounds, per direction, what a stage holds plus what the far socket
 * has not written yet: the source is not read past it. One read (at most one large
 * read buffer, 1 MiB) may come on top, since the bound is checked after each read.
 */
export const STAGE_HOLD_BYTES = 64 * 1024;

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
  /**
   * setStage puts `stage` into `stream` in place of the one there (which is stopped,
   * its bytes and FIN flushed on in order), or, with null, takes it out. Safe at any
   * time, on a live stream; on a closed connection the new stage is stopped at once.
   */
  setStage(stream: Stream, stage: Stage | null): void;
  /** stageOf is the stage in `stream` now, or null. */
  stageOf(stream: Stream): Stage | null;
}

/**
 * StageOwner is what a port needs from the context: passing a FIN on, and closing the
 * connection for its stage (implemented by ProxyContext).
 */
export interface StageOwner {
  shutWrite(to: Endpoint): void;
  closeForStage(name: string, reset: boolean): void;
}

/**
 * StagePort is the relay's side of one stage in one direction: it feeds the stage what
 * is read from `from`, and it is the stage's output towards `from.peer`. Made when a
 * stage is put in (never per chunk), dropped when it is taken out.
 */
export class StagePort implements EndpointStage, StageOutput {
  readonly stage: Stage;
  readonly #from: Endpoint;
  readonly #owner: StageOwner;
  #active = true;
  /** #endGiven: the source's FIN was handed to the stage. */
  #endGiven = false;
  // The callback of every write of the stage: the write is done, maybe read again.
  readonly #onWritten: () => void;

  constructor(stage: Stage, from: Endpoint, owner: StageOwner) {
    this.stage = stage;
    this.#from = from;
    this.#owner = owner;
    this.#onWritten = () => from.resumeIfWritten();
  }

  get held(): number {
    return this.stage.held;
  }

  /** take hands a chunk read from the source to the stage; false: stop reading the source. */
  take(chunk: Buffer): boolean {
    this.stage.write(chunk);
    return this.mayRead();
  }

  /** takeEnd hands the source's FIN to the stage. */
  takeEnd(): void {
    if (this.#endGiven) return;
    this.#endGiven = true;
    this.stage.end();
  }

  /** mayRead: what the stage holds plus what the far socket still writes is under the bound. */
  mayRead(): boolean {
    const to = this.#from.peer.socket;
    return this.stage.held + (to === null ? 0 : to.writableLength) < STAGE_HOLD_BYTES;
  }

  write(chunk: Buffer): boolean {
    const to = this.#from.peer;
    const socket = to.socket;
    if (!this.#active || socket === null || socket.destroyed || to.writeShut) return false;
    return socket.write(chunk, this.#onWritten);
  }

  end(): void {
    if (this.#active) this.#owner.shutWrite(this.#from.peer);
  }

  close(reset: boolean): void {
    if (this.#active) this.#owner.closeForStage(this.stage.name, reset);
  }

  /**
   * remove takes the stage out: it is stopped, and what it held is written on in order
   * (unless `flush` is false: the connection is closing). Returns true if the source's
   * FIN was handed to the stage and is still to be passed on.
   */
  remove(flush: boolean): boolean {
    this.#active = false;
    const rest = this.stage.stop();
    if (!flush) return false;
    const to = this.#from.peer;
    const socket = to.socket;
    if (socket === null || socket.destroyed || to.writeShut) return false;
    for (const chunk of rest) socket.write(chunk, this.#onWritten);
    return this.#endGiven;
  }
}

/** stageIn is the stage `from`'s bytes pass through now, or null. */
export function stageIn(from: Endpoint): Stage | null {
  const port = from.stage;
  return port instanceof StagePort ? port.stage : null;
}

/**
 * replaceStage puts `stage` (or, with null, nothing) between `from` and its peer. The
 * stage there before is stopped and what it held is written on, in order (`owner`'s
 * connection is open), then a FIN it held; the new one sees only bytes read from now
 * on. `relaying`: `from` relays its reads (not still held by the opening), so its read
 * callback follows the stage now. Reading resumes if it only waited for the old stage.
 */
export function replaceStage(
  from: Endpoint,
  stage: Stage | null,
  owner: StageOwner,
  relaying: boolean,
): void {
  const old = from.stage;
  from.stage = null;
  const finHeld = old instanceof StagePort && old.remove(relaying);
  if (stage !== null) {
    const port = new StagePort(stage, from, owner);
    from.stage = port;
    stage.start(port);
  }
  if (!relaying || from.socket === null) return;
  followStage(from.socket);
  if (finHeld) owner.shutWrite(from.peer);
  from.resumeIfWritten();
}
