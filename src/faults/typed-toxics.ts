/**
 * The typed face of a listener's toxics for a JavaScript test (`proxy.toxics()`):
 * the same ToxicRegistry the Toxiproxy HTTP API changes, with each toxic type's
 * attributes typed (a discriminated union on `type`).
 */
import type { Stream } from '../stage.js';
import type { ToxicRegistry } from './registry.js';
import type { Toxic, ToxicAttributesByType, ToxicType } from './toxic.js';

/** ToxicInputOf is a toxic of type T as a test gives it; attributes not given are 0. */
export interface ToxicInputOf<T extends ToxicType> {
  readonly type: T;
  /** name: unique on the listener (default `<type>_<stream>`). */
  readonly name?: string;
  /** stream: `upstream` (client → target) or `downstream` (target → client, the default). */
  readonly stream?: Stream;
  /** toxicity: the chance (0 to 1, default 1) that a new connection gets the toxic. */
  readonly toxicity?: number;
  readonly attributes?: Partial<ToxicAttributesByType[T]>;
}

/**
 * ToxicInput: latency {latency, jitter}, bandwidth {rate}, slow_close {delay},
 * timeout {timeout}, reset_peer {timeout}, slicer {average_size, size_variation,
 * delay}, limit_data {bytes}, noop {} (docs/faults.md describes each).
 */
export type ToxicInput = { [T in ToxicType]: ToxicInputOf<T> }[ToxicType];

/** ToxicUpdate: what update may change (attributes not given keep their values). */
export interface ToxicUpdate {
  readonly toxicity?: number;
  readonly attributes?: Readonly<Record<string, number>>;
}

/**
 * ToxicsHandle is one listener's toxics. Every change acts on the listener's open
 * connections at once, without losing a byte. Errors throw a ToxicError whose `code`
 * is PROXY_ERR_TOXIC_INVALID, PROXY_ERR_TOXIC_EXISTS or PROXY_ERR_TOXIC_NOT_FOUND.
 */
export interface ToxicsHandle {
  /** add validates a toxic, fills in its defaults and applies it; returns it. */
  add(toxic: ToxicInput): Toxic;
  /** update changes a toxic's toxicity and attributes; returns it as it is now. */
  update(name: string, changes: ToxicUpdate): Toxic;
  /** remove takes a toxic away (what it held goes on); returns it. */
  remove(name: string): Toxic;
  /** list: every toxic, upstream ones first, each stream in the order added. */
  list(): readonly Toxic[];
  /** reset removes every toxic of the listener. */
  reset(): void;
}

/** toxicsHandle wraps a listener's registry. */
export function toxicsHandle(registry: ToxicRegistry): ToxicsHandle {
  return {
    add: (toxic) => registry.add(toxic),
    update: (name, changes) => registry.update(name, changes),
    remove: (name) => registry.remove(name),
    list: () => registry.list(),
    reset: () => registry.reset(),
  };
}
