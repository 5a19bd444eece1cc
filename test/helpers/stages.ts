/**
 * Stages for tests (src/stage.ts): one that holds, one that re-slices, one that resets.
 * Each is one object per connection and direction, as a Stage must be.
 */
import type { Stage, StageOutput } from '../../src/stage.js';

/** HoldStage holds every chunk and the FIN until `release()` (or until it is taken out). */
export class HoldStage implements Stage {
  readonly name = 'hold';
  #output: StageOutput | null = null;
  #chunks: Buffer[] = [];
  #ended = false;
  held = 0;
  /** received counts every byte given to the stage. */
  received = 0;

  start(output: StageOutput): void {
    this.#output = output;
  }
  write(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.held += chunk.length;
    this.received += chunk.length;
  }
  end(): void {
    this.#ended = true;
  }
  get ended(): boolean {
    return this.#ended;
  }
  release(): void {
    const chunks = this.#chunks;
    this.#chunks = [];
    this.held = 0;
    for (const chunk of chunks) this.#output?.write(chunk);
    if (this.#ended) this.#output?.end();
  }
  stop(): readonly Buffer[] {
    const chunks = this.#chunks;
    this.#chunks = [];
    this.held = 0;
    this.#output = null;
    return chunks;
  }
}

/** SliceStage cuts each chunk into pieces of 1 to 1500 bytes and writes them on the next turn. */
export class SliceStage implements Stage {
  readonly name = 'slice';
  #output: StageOutput | null = null;
  #queue: Buffer[] = [];
  #ended = false;
  #immediate: NodeJS.Immediate | null = null;
  #seed: number;
  held = 0;

  constructor(seed: number) {
    this.#seed = seed;
  }
  start(output: StageOutput): void {
    this.#output = output;
  }
  write(chunk: Buffer): void {
    for (let at = 0; at < chunk.length; ) {
      this.#seed = (this.#seed * 1103515245 + 12345) & 0x7fffffff;
      const size = 1 + (this.#seed % 1500);
      this.#queue.push(chunk.subarray(at, at + size));
      at += size;
    }
    this.held += chunk.length;
    this.#schedule();
  }
  end(): void {
    this.#ended = true;
    this.#schedule();
  }
  #schedule(): void {
    this.#immediate ??= setImmediate(() => this.#flush());
  }
  #flush(): void {
    this.#immediate = null;
    const queue = this.#queue;
    this.#queue = [];
    for (const piece of queue) {
      this.held -= piece.length;
      this.#output?.write(piece);
    }
    if (this.#ended) this.#output?.end();
  }
  stop(): readonly Buffer[] {
    if (this.#immediate !== null) clearImmediate(this.#immediate);
    this.#immediate = null;
    const queue = this.#queue;
    this.#queue = [];
    this.held = 0;
    this.#output = null;
    return queue;
  }
}

/** ResetStage ends the connection with a reset on the first chunk (as reset_peer does). */
export class ResetStage implements Stage {
  readonly name = 'reset-now';
  readonly held = 0;
  #output: StageOutput | null = null;
  start(output: StageOutput): void {
    this.#output = output;
  }
  write(): void {
    this.#output?.close(true);
  }
  end(): void {}
  stop(): readonly Buffer[] {
    return [];
  }
}
