/**
 * ControlStage: the stage a test's connection handle (connection-handle.ts) keeps at
 * the end of each direction of the one connection it holds. It passes bytes on
 * unchanged, counts them (for `bytes(stream, n)`), and can hold them (pause), close
 * the connection after exactly n more bytes (cutAfter), or close it now.
 *
 * It sits only in a connection a test took hold of (`proxy.nextConnection()`); no
 * other connection ever meets it.
 */
import type { Stage, StageOutput } from '../stage.js';

/** ByteWaiter: a `bytes(stream, n)` promise still waiting. */
interface ByteWaiter {
  readonly n: number;
  readonly resolve: () => void;
}

/** ControlStage passes, counts, holds and cuts one direction of one connection. */
export class ControlStage implements Stage {
  /** name: `control`, or what closed the connection (`cut_after`, `reset`, `close`: the close record's `toxic`). */
  name = 'control';
  /** passed: the bytes this stage let through so far. */
  passed = 0;
  #output: StageOutput | null = null;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #paused = false;
  #endHeld = false;
  #ended = false;
  #stopped = false;
  /** #cutLeft: the bytes still allowed before the connection is closed (null: no cut). */
  #cutLeft: number | null = null;
  #waiters: ByteWaiter[] = [];

  get held(): number {
    return this.#heldBytes;
  }

  get paused(): boolean {
    return this.#paused;
  }

  start(output: StageOutput): void {
    this.#output = output;
  }

  write(chunk: Buffer): void {
    if (this.#paused) {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      return;
    }
    this.#pass(chunk);
  }

  end(): void {
    if (this.#paused) this.#endHeld = true;
    else this.#end();
  }

  stop(): readonly Buffer[] {
    this.#stopped = true;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    return held;
  }

  /** pause holds every byte (and a FIN) from now on, in order, until resume. */
  pause(): void {
    this.#paused = true;
  }

  /** resume lets what was held go on, in order, then passes bytes on again. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    while (this.#held.length > 0 && !this.#paused && !this.#stopped) {
      const chunk = this.#held.shift() as Buffer;
      this.#heldBytes -= chunk.length;
      this.#pass(chunk);
    }
    if (this.#endHeld && !this.#paused) {
      this.#endHeld = false;
      this.#end();
    }
  }

  /** cutAfter closes the connection (FIN, cause `toxic`) once `n` more bytes have passed. */
  cutAfter(n: number): void {
    this.#cutLeft = n;
    if (n === 0) this.close(false, 'cut_after');
  }

  /** close ends the connection now (cause `toxic`): with a reset both ways, or a FIN. */
  close(reset: boolean, why: string = reset ? 'reset' : 'close'): void {
    if (this.#stopped) return;
    this.name = why;
    this.#output?.close(reset);
  }

  /** whenPassed resolves once `n` bytes in all have passed this stage. */
  whenPassed(n: number): Promise<void> {
    if (this.passed >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  #pass(chunk: Buffer): void {
    if (this.#stopped || this.#ended) return;
    let out = chunk;
    const left = this.#cutLeft;
    if (left !== null && out.length >= left) out = out.subarray(0, left);
    if (out.length > 0) {
      this.passed += out.length;
      this.#output?.write(out);
      this.#wake();
    }
    if (left !== null) {
      this.#cutLeft = left - out.length;
      if (this.#cutLeft === 0) this.close(false, 'cut_after');
    }
  }

  #end(): void {
    if (this.#stopped || this.#ended) return;
    this.#ended = true;
    this.#output?.end();
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const still: ByteWaiter[] = [];
    for (const waiter of this.#waiters) {
      if (this.passed >= waiter.n) waiter.resolve();
      else still.push(waiter);
    }
    this.#waiters = still;
  }
}
