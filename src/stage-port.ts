/**
 * The relay's side of a stage (stage.ts): StagePort feeds a stage what is read from
 * one endpoint and is the stage's output towards the other; replaceStage puts a stage
 * into a direction of a live connection, or takes it out, flushing what it held.
 *
 * The relay, not the stage, bounds memory: the source is read only while what the
 * stage holds plus what the far socket still has to write stays under
 * STAGE_HOLD_BYTES, and it resumes once the far socket has written everything and the
 * stage holds less than that (Endpoint.resumeIfWritten, which every write of the stage
 * triggers through its callback). A slow reader at the far end therefore holds the
 * source back through any stage.
 */
import type { Endpoint, EndpointStage } from './endpoint.js';
import { followStage } from './relay.js';
import type { Stage, StageOutput } from './stage.js';

/**
 * STAGE_HOLD_BYTES bounds, per direction, what a stage holds plus what the far socket
 * has not written yet: the source is not read past it. One read (at most one large
 * read buffer, 1 MiB) may come on top, since the bound is checked after each read.
 */
export const STAGE_HOLD_BYTES = 64 * 1024;

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
