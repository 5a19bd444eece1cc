/**
 * RegistryToxicStore: the Toxiproxy API's `ToxicStore` (toxic-store.ts) over a
 * listener's `ToxicRegistry`, so that a toxic the API adds acts on the data path.
 *
 * The API reads and checks each body itself (toxic-store.ts: Toxiproxy's order of
 * checks and texts); the registry then checks again what only it refuses (a `slicer`
 * whose sizes would split forever). Its ToxicErrors become the API's, with
 * Toxiproxy's texts: `bad request body: ...` (400), `toxic already exists` (409),
 * `toxic not found` (404).
 */
import {
  type Toxic as ApiToxic,
  ToxicError as ApiToxicError,
  type ToxicStore,
} from '../toxic-store.js';
import type { ToxicRegistry } from './registry.js';
import { ToxicError } from './toxic.js';

/** RegistryToxicStore is a listener's ToxicStore: every change goes to its registry at once. */
export class RegistryToxicStore implements ToxicStore {
  /** registry: the listener's toxics and the connections they act on. */
  readonly registry: ToxicRegistry;

  constructor(registry: ToxicRegistry) {
    this.registry = registry;
  }

  list(): readonly ApiToxic[] {
    return this.registry.list();
  }

  get(name: string): ApiToxic | undefined {
    return this.registry.get(name);
  }

  add(toxic: ApiToxic): void {
    apiErrors(() => this.registry.add(toxic));
  }

  update(toxic: ApiToxic): void {
    apiErrors(() =>
      this.registry.update(toxic.name, { toxicity: toxic.toxicity, attributes: toxic.attributes }),
    );
  }

  remove(name: string): void {
    apiErrors(() => this.registry.remove(name));
  }

  reset(): void {
    this.registry.reset();
  }
}

/** apiErrors runs `change`, turning the registry's ToxicError into the API's. */
function apiErrors(change: () => unknown): void {
  try {
    change();
  } catch (err) {
    if (!(err instanceof ToxicError)) throw err;
    const text = err.status === 400 ? `${err.toxiproxyError}: ${err.message}` : err.toxiproxyError;
    throw new ApiToxicError(err.status, text);
  }
}
