/**
 * ToxicChain: the toxics of one stream of one connection, composed into one Stage in
 * the order they were added (Toxiproxy's ToxicLink, without its goroutines and
 * channels). What toxic i passes on goes straight into toxic i + 1; what the last one
 * passes on goes to the far socket.
 *
 * Toxics may be added, replaced and removed while bytes flow, and none of these drops,
 * duplicates or reorders a byte:
 *
 * - add (or insert at i): the new toxic gets what its predecessor passes on from now
 *   on; everything passed on before is already further down the chain.
 * - remove: the toxic is stopped; what it held goes on to its successor, in order,
 *   ahead of anything its predecessor passes on later; then a FIN it held.
 * - replace (an update of its attributes): the old one is stopped and what it held
 *   goes into the new one first, then a FIN it held.
 *
 * The FIN travels the chain like the bytes: each toxic passes it on after what it
 * holds (half-close passes through every toxic). A toxic that closes the connection
 * gracefully (limit_data, timeout) sends its close down the chain the same way, so
 * the bytes it let through still pass the toxics after it (as in Toxiproxy, where a
 * toxic closing its output makes the next ones drain and close); a reset is at once.
 */

import type { Stage, StageOutput } from '../stage.js';
import { ControlStage } from './control-stage.js';

/** ChainLink is one toxic's place in a chain, and that toxic's output. */
class ChainLink implements StageOutput {
  readonly name: string;
  readonly stage: Stage;
  readonly chain: ToxicChain;
  next: ChainLink | null = null;
  /** active: still in the chain; a stage taken out may no longer write. */
  active = true;
  /** endGiven: the FIN (or a close travelling down) was handed to this stage. */
  endGiven = false;
  /** endPassed: this stage passed the FIN (or its close) on. */
  endPassed = false;
  /** closing: this stage's graceful close travels down the chain. */
  closing = false;

  constructor(name: string, stage: Stage, chain: ToxicChain) {
    this.name = name;
    this.stage = stage;
    this.chain = chain;
  }

  take(chunk: Buffer): void {
    this.stage.write(chunk);
  }

  takeEnd(): void {
    if (this.endGiven) return;
    this.endGiven = true;
    this.stage.end();
  }

  write(chunk: Buffer): boolean {
    return this.active && this.chain.forward(this.next, chunk);
  }

  end(): void {
    if (!this.active || this.endPassed) return;
    this.endPassed = true;
    this.chain.forwardEnd(this.next);
  }

  close(reset: boolean): void {
    if (this.active) this.chain.closeFrom(this, reset);
  }
}

/** ToxicChain is one stream's toxics of one connection, as one Stage. */
export class ToxicChain implements Stage {
  #links: ChainLink[] = [];
  #output: StageOutput | null = null;
  #started = false;
  #stopped = false;
  /** #endGiven: the source's FIN was handed to the chain. */
  #endGiven = false;
  /** #closingName: the toxic that closed (or is closing) the connection. */
  #closingName: string | null = null;

  /** `toxics`: [name, stage] pairs, in order; each stage is started with the chain. */
  constructor(toxics: Iterable<readonly [string, Stage]> = []) {
    for (const [name, stage] of toxics) this.insert(this.#links.length, name, stage);
  }

  /**
   * name is `toxics`, or, once a toxic closed the connection, that toxic's name: the
   * relay reads it for the close record (`"toxic": "<name>"`).
   */
  get name(): string {
    return this.#closingName ?? 'toxics';
  }

  /** held: the bytes every toxic of the chain holds now. */
  get held(): number {
    let held = 0;
    for (const link of this.#links) held += link.stage.held;
    return held;
  }

  /** size is the number of toxics in the chain. */
  get size(): number {
    return this.#links.length;
  }

  /** stopped: the chain was taken out or its connection closed; changes are ignored. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** names lists the toxics, in order. */
  names(): string[] {
    return this.#links.map((link) => link.name);
  }

  /** stageOf is the stage of the toxic called `name`, or null. */
  stageOf(name: string): Stage | null {
    return this.#links.find((link) => link.name === name)?.stage ?? null;
  }

  start(output: StageOutput): void {
    this.#output = output;
    this.#started = true;
    for (const link of this.#links) link.stage.start(link);
  }

  write(chunk: Buffer): void {
    this.forward(this.#links[0] ?? null, chunk);
  }

  end(): void {
    if (this.#endGiven) return;
    this.#endGiven = true;
    this.forwardEnd(this.#links[0] ?? null);
  }

  stop(): readonly Buffer[] {
    if (this.#stopped) return [];
    this.#stopped = true;
    this.#output = null;
    // Oldest first: what the last toxic holds came in before what the ones above it hold.
    const rest: Buffer[] = [];
    for (let i = this.#links.length - 1; i >= 0; i--) {
      const link = this.#links[i] as ChainLink;
      link.active = false;
      for (const chunk of link.stage.stop()) rest.push(chunk);
    }
    return rest;
  }

  /** add puts a toxic at the end of the chain (started at once if the chain is). */
  add(name: string, stage: Stage): void {
    this.insert(this.#links.length, name, stage);
  }

  /** insert puts a toxic at `index` (0: first); it sees only what reaches it from now on. */
  insert(index: number, name: string, stage: Stage): void {
    if (this.#stopped) {
      stage.stop();
      return;
    }
    const at = Math.max(0, Math.min(index, this.#links.length));
    const link = new ChainLink(name, stage, this);
    const prev = this.#links[at - 1] ?? null;
    link.next = this.#links[at] ?? null;
    if (prev !== null) prev.next = link;
    // The FIN already went past this place: nothing more will reach the new toxic.
    if (prev !== null ? prev.endPassed : this.#endGiven) {
      link.endGiven = true;
      link.endPassed = true;
    }
    this.#links.splice(at, 0, link);
    if (this.#started) stage.start(link);
  }

  /**
   * replace puts `stage` in place of the toxic called `name` (an update): the old one
   * is stopped, what it held is written into the new one, then a FIN it held. Returns
   * the old stage, or null if there is no such toxic (then `stage` is not used).
   */
  replace(name: string, stage: Stage): Stage | null {
    const at = this.#indexOf(name);
    const old = this.#links[at];
    if (old === undefined || this.#stopped) return null;
    old.active = false;
    const link = new ChainLink(name, stage, this);
    link.next = old.next;
    link.endGiven = old.endGiven;
    link.endPassed = old.endPassed;
    link.closing = old.closing;
    this.#links[at] = link;
    const prev = this.#links[at - 1];
    if (prev !== undefined) prev.next = link;
    const rest = old.stage.stop();
    if (!this.#started) return old.stage;
    stage.start(link);
    for (const chunk of rest) {
      if (this.#stopped) return old.stage;
      stage.write(chunk);
    }
    if (link.endGiven && !link.endPassed && !this.#stopped) stage.end();
    return old.stage;
  }

  /**
   * remove takes the toxic called `name` out: it is stopped, and what it held goes on
   * to the next toxic (or the far socket), in order, then a FIN it held. Returns the
   * removed stage, or null if there is none.
   */
  remove(name: string): Stage | null {
    const at = this.#indexOf(name);
    const link = this.#links[at];
    if (link === undefined) return null;
    link.active = false;
    this.#links.splice(at, 1);
    const prev = this.#links[at - 1];
    if (prev !== undefined) prev.next = link.next;
    const rest = link.stage.stop();
    if (!this.#started || this.#stopped) return link.stage;
    for (const chunk of rest) {
      if (this.#stopped) return link.stage;
      this.forward(link.next, chunk);
    }
    if (link.endGiven && !link.endPassed && !this.#stopped) this.forwardEnd(link.next);
    return link.stage;
  }

  /** forward hands a chunk to `next`, or, at the end of the chain, to the far socket. */
  forward(next: ChainLink | null, chunk: Buffer): boolean {
    if (next !== null) {
      next.take(chunk);
      return true;
    }
    return this.#output?.write(chunk) ?? false;
  }

  /** forwardEnd hands the FIN to `next`; at the end of the chain, it is passed on (or the close is done). */
  forwardEnd(next: ChainLink | null): void {
    if (next !== null) next.takeEnd();
    else if (this.#closingName !== null) this.#output?.close(false);
    else this.#output?.end();
  }

  /** closeFrom: `link`'s toxic closes the connection; a reset at once, a FIN close down the chain. */
  closeFrom(link: ChainLink, reset: boolean): void {
    if (this.#stopped || (link.closing && !reset)) return;
    if (reset || link.endPassed) {
      this.#closingName = closingName(link);
      this.#output?.close(reset);
      return;
    }
    this.#closingName ??= closingName(link);
    link.closing = true;
    link.endPassed = true;
    this.forwardEnd(link.next);
  }

  #indexOf(name: string): number {
    return this.#links.findIndex((link) => link.name === name);
  }
}

/**
 * closingName: the name a close record shows for `link`'s stage: a chain inside a chain
 * (a held connection's listener toxics, connection-handle.ts) or a ControlStage names
 * what closed; any other stage is named by its link.
 */
function closingName(link: ChainLink): string {
  return link.stage instanceof ToxicChain || link.stage instanceof ControlStage
    ? link.stage.name
    : link.name;
}
