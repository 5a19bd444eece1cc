/** noop: passes every byte and the FIN on at once (Toxiproxy's `noop`). */
import type { Stage, StageOutput } from '../stage.js';

/** NoopStage passes everything on unchanged, at once. */
export class NoopStage implements Stage {
  readonly name: string;
  readonly held = 0;
  #output: StageOutput | null = null;

  constructor(name: string) {
    this.name = name;
  }

  start(output: StageOutput): void {
    this.#output = output;
  }

  write(chunk: Buffer): void {
    this.#output?.write(chunk);
  }

  end(): void {
    this.#output?.end();
  }

  stop(): readonly Buffer[] {
    this.#output = null;
    return [];
  }
}
