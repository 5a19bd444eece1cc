/**
 * ToxicRegistry: one listener's toxics (Toxiproxy's ToxicCollection), and the open
 * connections they act on.
 *
 * The toxics of a stream apply in the order they were added. A new connection gets,
 * per stream, a ToxicChain of the toxics it drew (each toxic's `toxicity` is the
 * chance a connection gets it; 0 never, 1 always, without a draw); a stream with no
 * toxic drawn gets no stage at all, so it stays on the plain path. When the list
 * changes, every connection the registry knows is changed at once, in place, without
 * losing a byte (chain.ts): an added toxic is drawn for each connection and put at
 * the end of its chain; an updated one is rebuilt with its new attributes (and drawn
 * again if its toxicity changed); a removed one lets what it held go on. A chain left
 * empty is taken out again.
 *
 * The registry knows a connection from `attach` (the listener's `relaying` hook) to
 * `detach` (its `connectionClose`); it also forgets, now and then, connections that
 * closed without a `detach`.
 */
import type { Stage, StageControl, Stream } from '../stage.js';
import type { TimerSet } from '../timer-set.js';
import { ToxicChain } from './chain.js';
import { defaultToxicEnv, type Random, type ToxicEnv } from './env.js';
import {
  type ParseOptions,
  parseToxic,
  type Toxic,
  toxicExists,
  toxicNotFound,
  updateToxic,
} from './toxic.js';
import { createToxicStage } from './toxic-stage.js';

/** StreamStages: the stage to put into each stream of a new connection (null: none). */
export interface StreamStages {
  readonly upstream: ToxicChain | null;
  readonly downstream: ToxicChain | null;
}

/** ToxicRegistryOptions: time and chance for the toxics (tests inject both). */
export interface ToxicRegistryOptions {
  /** timers for every toxic's timer (default: one TimerSet for the process). */
  readonly timers?: TimerSet;
  /** random for toxicity, jitter and slice sizes (default Math.random; see seededRandom). */
  readonly random?: Random;
  /**
   * openConnections: the listener's relaying connections now. A listener attaches a
   * connection only while the registry has toxics (a plain listener pays nothing), so
   * when the first toxic is added the registry attaches these (those it does not know).
   */
  readonly openConnections?: () => Iterable<StageControl>;
}

/** Attached: what the registry keeps of one open connection. */
interface Attached {
  readonly control: StageControl;
  /** applied: the names of the toxics this connection drew. */
  readonly applied: Set<string>;
  readonly chains: { upstream: ToxicChain | null; downstream: ToxicChain | null };
}

const STREAMS: readonly Stream[] = ['upstream', 'downstream'];

/** ToxicRegistry keeps one listener's toxics and applies them to its connections. */
export class ToxicRegistry {
  readonly #env: ToxicEnv;
  readonly #openConnections: (() => Iterable<StageControl>) | undefined;
  /** Every toxic, in the order added (each stream's order is its chain's order). */
  #toxics: Toxic[] = [];
  readonly #connections = new Map<string, Attached>();
  #sweepAt = 64;

  constructor(options: ToxicRegistryOptions = {}) {
    const fallback = defaultToxicEnv();
    this.#env = {
      timers: options.timers ?? fallback.timers,
      random: options.random ?? fallback.random,
    };
    this.#openConnections = options.openConnections;
  }

  /** list: every toxic, upstream ones first, then downstream, each in the order added (as Toxiproxy lists them). */
  list(): readonly Toxic[] {
    return [...this.listStream('upstream'), ...this.listStream('downstream')];
  }

  /** listStream: the toxics of one stream, in the order they apply. */
  listStream(stream: Stream): readonly Toxic[] {
    return this.#toxics.filter((toxic) => toxic.stream === stream);
  }

  /** get: the toxic called `name`, or undefined. */
  get(name: string): Toxic | undefined {
    return this.#toxics.find((toxic) => toxic.name === name);
  }

  /** size: how many toxics the listener has. */
  get size(): number {
    return this.#toxics.length;
  }

  /** connectionCount: how many open connections the registry knows. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * add validates `definition` (parseToxic: defaults filled in), puts it at the end of
   * its stream and applies it to every open connection that draws it. Returns the
   * toxic. Throws ToxicError: PROXY_ERR_TOXIC_INVALID, PROXY_ERR_TOXIC_EXISTS.
   */
  add(definition: unknown, options?: ParseOptions): Toxic {
    const toxic = parseToxic(definition, options);
    if (this.get(toxic.name) !== undefined) throw toxicExists(toxic.name);
    this.#toxics.push(toxic);
    if (this.#toxics.length === 1) this.#attachOpen();
    for (const attached of this.#live()) {
      if (attached.applied.has(toxic.name)) continue; // just attached with it
      if (!this.#draw(toxic)) continue;
      attached.applied.add(toxic.name);
      this.#insert(attached, toxic);
    }
    return toxic;
  }

  /**
   * update changes the toxicity and attributes of the toxic called `name`
   * (updateToxic: attributes not given keep their values) and rebuilds it on every
   * open connection that has it; with a new toxicity, each connection draws again.
   * Returns the updated toxic. Throws ToxicError: PROXY_ERR_TOXIC_NOT_FOUND,
   * PROXY_ERR_TOXIC_INVALID.
   */
  update(name: string, changes: unknown, options?: ParseOptions): Toxic {
    const at = this.#indexOf(name);
    const before = this.#toxics[at] as Toxic;
    const toxic = updateToxic(before, changes, options);
    this.#toxics[at] = toxic;
    const drawAgain = toxic.toxicity !== before.toxicity;
    for (const attached of this.#live()) {
      const had = attached.applied.has(name);
      const has = drawAgain ? this.#draw(toxic) : had;
      if (had && has) {
        const chain = attached.chains[toxic.stream];
        chain?.replace(name, createToxicStage(toxic, this.#env, chain.stageOf(name)));
      } else if (had) {
        attached.applied.delete(name);
        this.#takeOut(attached, toxic);
      } else if (has) {
        attached.applied.add(name);
        this.#insert(attached, toxic);
      }
    }
    return toxic;
  }

  /**
   * remove takes the toxic called `name` away, from the list and from every open
   * connection (what it held goes on). Returns it. Throws ToxicError
   * PROXY_ERR_TOXIC_NOT_FOUND.
   */
  remove(name: string): Toxic {
    const at = this.#indexOf(name);
    const toxic = this.#toxics[at] as Toxic;
    this.#toxics.splice(at, 1);
    for (const attached of this.#live()) {
      if (!attached.applied.delete(name)) continue;
      this.#takeOut(attached, toxic);
    }
    return toxic;
  }

  /** reset removes every toxic (Toxiproxy's POST /reset, for one listener). */
  reset(): void {
    for (const toxic of [...this.#toxics]) this.remove(toxic.name);
  }

  /**
   * stagesFor draws the toxics for a new connection and makes its chains (not
   * started; null for a stream with none). The caller puts them in with
   * StageControl.setStage; such a connection is not changed by later updates (use
   * attach for that).
   */
  stagesFor(): StreamStages {
    const chains = this.#draft(new Set());
    return chains;
  }

  /**
   * attach: a new connection starts relaying (the listener's `relaying` hook). Its
   * toxics are drawn and put into its streams, and it follows every later change
   * until `detach`.
   */
  attach(control: StageControl): void {
    if (this.#connections.size >= this.#sweepAt) this.#sweep();
    const applied = new Set<string>();
    const attached: Attached = { control, applied, chains: this.#draft(applied) };
    for (const stream of STREAMS) {
      const chain = attached.chains[stream];
      if (chain !== null) control.setStage(stream, chain);
    }
    if (isClosed(control)) return;
    this.#connections.set(control.id, attached);
  }

  /** #attachOpen attaches the open connections the registry does not know (openConnections). */
  #attachOpen(): void {
    if (this.#openConnections === undefined) return;
    for (const control of this.#openConnections())
      if (!this.#connections.has(control.id) && !control.closed) this.attach(control);
  }

  /** detach: the connection `id` closed (the listener's `connectionClose`); forget it. */
  detach(id: string): void {
    this.#connections.delete(id);
  }

  /** #draft draws each toxic for a connection, noting the ones drawn in `applied`. */
  #draft(applied: Set<string>): Attached['chains'] {
    const chains: Attached['chains'] = { upstream: null, downstream: null };
    for (const toxic of this.#toxics) {
      if (!this.#draw(toxic)) continue;
      applied.add(toxic.name);
      chains[toxic.stream] ??= new ToxicChain();
      chains[toxic.stream]?.add(toxic.name, createToxicStage(toxic, this.#env));
    }
    return chains;
  }

  /** #draw: does a connection get `toxic`? 0 never and 1 always, without a draw. */
  #draw(toxic: Toxic): boolean {
    if (toxic.toxicity >= 1) return true;
    if (toxic.toxicity <= 0) return false;
    return this.#env.random() < toxic.toxicity;
  }

  /** #insert puts `toxic` into a connection's chain, after the toxics before it that it has. */
  #insert(attached: Attached, toxic: Toxic): void {
    let index = 0;
    for (const other of this.#toxics) {
      if (other === toxic) break;
      if (other.stream === toxic.stream && attached.applied.has(other.name)) index += 1;
    }
    const stage: Stage = createToxicStage(toxic, this.#env);
    const chain = attached.chains[toxic.stream];
    if (chain !== null) {
      chain.insert(index, toxic.name, stage);
      return;
    }
    const created = new ToxicChain([[toxic.name, stage]]);
    attached.chains[toxic.stream] = created;
    attached.control.setStage(toxic.stream, created);
  }

  /** #takeOut removes `toxic` from a connection's chain; an empty chain is taken out. */
  #takeOut(attached: Attached, toxic: Toxic): void {
    const chain = attached.chains[toxic.stream];
    if (chain === null) return;
    chain.remove(toxic.name);
    if (chain.size > 0) return;
    attached.chains[toxic.stream] = null;
    if (attached.control.stageOf(toxic.stream) === chain)
      attached.control.setStage(toxic.stream, null);
  }

  /** #live: the connections still open (closed ones are forgotten on the way). */
  *#live(): Generator<Attached> {
    for (const [id, attached] of this.#connections) {
      if (isClosed(attached.control)) this.#connections.delete(id);
      else yield attached;
    }
  }

  #sweep(): void {
    for (const [id, attached] of this.#connections)
      if (isClosed(attached.control)) this.#connections.delete(id);
    this.#sweepAt = Math.max(64, this.#connections.size * 2);
  }

  #indexOf(name: string): number {
    const at = this.#toxics.findIndex((toxic) => toxic.name === name);
    if (at < 0) throw toxicNotFound(name);
    return at;
  }
}

/** isClosed: the connection behind `control` has closed. */
function isClosed(control: StageControl): boolean {
  return control.closed;
}
