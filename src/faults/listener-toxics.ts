/**
 * ListenerToxics: the toxics of a proxy's listeners, by listener name. Each name has
 * one ToxicRegistry (what the Toxiproxy API changes), made when first needed on the
 * proxy's TimerSet and kept across reloads, so a listener a reload moves keeps its
 * toxics. The Supervisor owns one and asks it: `attach` a new listener to its name's
 * registry, `applyConfig` the toxics a config gives, `forget` a removed name.
 */
import { isDeepStrictEqual } from 'node:util';
import type { ListenerConfig } from '../config/config.js';
import type { StageControl } from '../stage.js';
import type { TimerSet } from '../timer-set.js';
import { ToxicRegistry } from './registry.js';
import type { Toxic } from './toxic.js';

/** ToxicListener is what ListenerToxics needs of a listener: its name, registry and connections. */
export interface ToxicListener {
  readonly config: ListenerConfig;
  toxics: ToxicRegistry | null;
  relayingContexts(): Iterable<StageControl>;
}

/** ListenerToxics holds the toxics of every listener name of one proxy. */
export class ListenerToxics {
  readonly #timers: TimerSet;
  /** #listeners: every listener of the proxy now, draining ones included. */
  readonly #listeners: () => Iterable<ToxicListener>;
  readonly #registries = new Map<string, ToxicRegistry>();
  /** #fromConfig: the toxics each name's config gave (the file's), as applyConfig last applied them. */
  readonly #fromConfig = new Map<string, NonNullable<ListenerConfig['toxics']>>();

  constructor(timers: TimerSet, listeners: () => Iterable<ToxicListener>) {
    this.#timers = timers;
    this.#listeners = listeners;
  }

  /**
   * of: the registry of the listeners called `name` (made when first needed). It
   * attaches, when its first toxic comes, the relaying connections of every listener of
   * that name (one draining after a reload moved it, too).
   */
  of(name: string): ToxicRegistry {
    let registry = this.#registries.get(name);
    if (registry === undefined) {
      const made: ToxicRegistry = new ToxicRegistry({
        timers: this.#timers,
        openConnections: () => this.#relaying(made),
      });
      registry = made;
      this.#registries.set(name, registry);
    }
    return registry;
  }

  /** listOf: the toxics of `name`, if it has a registry. */
  listOf(name: string): readonly Toxic[] | undefined {
    return this.#registries.get(name)?.list();
  }

  /** attach gives a new listener the registry of its name. */
  attach<L extends ToxicListener>(listener: L): L {
    listener.toxics = this.of(listener.config.name);
    return listener;
  }

  /** forget drops the toxics of a name no listener has any more. */
  forget(name: string): void {
    this.#registries.delete(name);
    this.#fromConfig.delete(name);
  }

  /**
   * applyConfig gives a listener the toxics its config lists (`toxics` in the file).
   * When the list differs from the one applied before, the toxics the config gave
   * before are removed and the new ones added (one of the same name added over the API
   * is replaced); toxics added over the API stay. An unchanged list changes nothing, so
   * a reload does not restart the toxics of open connections.
   */
  applyConfig(config: ListenerConfig): void {
    const before = this.#fromConfig.get(config.name) ?? [];
    const after = config.toxics ?? [];
    if (isDeepStrictEqual(before, after)) return;
    const registry = this.of(config.name);
    for (const toxic of before)
      if (registry.get(toxic.name) !== undefined) registry.remove(toxic.name);
    for (const toxic of after) {
      if (registry.get(toxic.name) !== undefined) registry.remove(toxic.name);
      registry.add(toxic);
    }
    if (after.length === 0) this.#fromConfig.delete(config.name);
    else this.#fromConfig.set(config.name, after);
  }

  *#relaying(registry: ToxicRegistry): Generator<StageControl> {
    for (const listener of this.#listeners())
      if (listener.toxics === registry) yield* listener.relayingContexts();
  }
}
