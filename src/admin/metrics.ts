/**
 * Prometheus metrics of one proxy, in the text exposition format (0.0.4).
 *
 * Nothing here runs per chunk. Counters and gauges are read from the proxy's own
 * stats when Prometheus scrapes (prom-client's `collect`), so the relay pays nothing
 * for them; the two histograms are observed once per connection, from the proxy's
 * `connectionConnect` and `connectionClose` events, by `ConnectionHistograms`.
 *
 * With `--workers N` the counters come from the primary's `ClusterView`, which sums
 * the workers' stats, and the histograms from every worker's `ConnectionHistograms`,
 * added bucket by bucket with prom-client's `AggregatorRegistry.aggregate`.
 *
 * prom-client is loaded when the first of these objects is made, not when this module
 * is: the library entry exports AdminServer, and a program that only proxies should
 * not pay for a metrics library it never uses (docs/performance.md, "Start-up").
 * It is a CommonJS package, so `require` loads it synchronously, as a constructor must.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import type { Registry } from 'prom-client';
import type { ConnectionInfo } from '../connection-info.js';
import type { ListenerInfo, ProxyEvents } from '../proxy-info.js';
import type { HistogramSource, ProxyView } from './view.js';

const CONNECT_BUCKETS_S = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
const DURATION_BUCKETS_S = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

let loaded: typeof PromClient | undefined;

/** promClient is the prom-client module, loaded on the first call. */
export function promClient(): typeof PromClient {
  loaded ??= createRequire(import.meta.url)('prom-client') as typeof PromClient;
  return loaded;
}

/**
 * ConnectionHistograms observes one process's connections into the two latency
 * histograms, in a registry of their own. It listens to `proxy` for as long as the
 * proxy lives.
 */
export class ConnectionHistograms implements HistogramSource {
  readonly registry: Registry;
  readonly #detach: () => void;

  constructor(proxy: EventEmitter<ProxyEvents>) {
    const { Histogram, Registry } = promClient();
    this.registry = new Registry();
    const registers = [this.registry];
    const connectDuration = new Histogram({
      name: 'proxy_connect_duration_seconds',
      help: 'Time from accepting a client to its upstream connection being up (successful connects).',
      labelNames: ['listener', 'target'],
      buckets: CONNECT_BUCKETS_S,
      registers,
    });
    const connectionDuration = new Histogram({
      name: 'proxy_connection_duration_seconds',
      help: 'Time from accepting a client to closing its connection.',
      labelNames: ['listener'],
      buckets: DURATION_BUCKETS_S,
      registers,
    });
    const onConnect = (c: ConnectionInfo): void => {
      if (c.connectMs === undefined || c.upstream === null) return;
      connectDuration.observe({ listener: c.listener, target: c.upstream }, c.connectMs / 1000);
    };
    const onClose = (c: ConnectionInfo): void => {
      connectionDuration.observe({ listener: c.listener }, c.ageMs / 1000);
    };
    proxy.on('connectionConnect', onConnect);
    proxy.on('connectionClose', onClose);
    this.#detach = () => {
      proxy.off('connectionConnect', onConnect);
      proxy.off('connectionClose', onClose);
    };
  }

  /** detach stops observing the proxy's events (the admin server that made it closed). */
  detach(): void {
    this.#detach();
  }

  histograms(): Registry {
    return this.registry;
  }
}

/**
 * ProxyMetrics is a Prometheus registry that reflects one proxy (`view`), plus the
 * latency histograms from `histograms`.
 */
export class ProxyMetrics {
  readonly registry: Registry;
  readonly #view: ProxyView;
  readonly #histograms: HistogramSource;
  /** #current: the listeners as read once per scrape, for every collect() below. */
  #current: readonly ListenerInfo[] = [];

  constructor(view: ProxyView, histograms: HistogramSource) {
    const { Counter, Gauge, Registry } = promClient();
    this.registry = new Registry();
    this.#view = view;
    this.#histograms = histograms;
    const registers = [this.registry];
    const metrics = this;
    new Counter({
      name: 'proxy_connections_accepted_total',
      help: 'Clients accepted, including those closed at once (max_connections).',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) this.inc({ listener: l.name }, l.stats.accepted);
      },
    });
    new Gauge({
      name: 'proxy_connections_active',
      help: 'Proxied connections open now.',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) this.set({ listener: l.name }, l.stats.active);
      },
    });
    new Gauge({
      name: 'proxy_toxics',
      help: 'Toxics (fault injection) on the listener now, both streams.',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) this.set({ listener: l.name }, l.toxics?.length ?? 0);
      },
    });
    new Counter({
      name: 'proxy_connections_closed_total',
      help: 'Closed connections by cause (client_fin, idle_timeout, ...).',
      labelNames: ['listener', 'cause'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) {
          for (const [cause, n] of Object.entries(l.stats.closed)) {
            this.inc({ listener: l.name, cause }, n ?? 0);
          }
        }
      },
    });
    new Counter({
      name: 'proxy_bytes_total',
      help: 'Bytes delivered (accepted by the receiving socket), by direction (to_upstream, to_client); open connections included.',
      labelNames: ['listener', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) {
          this.inc({ listener: l.name, direction: 'to_upstream' }, l.stats.bytesToUpstream);
          this.inc({ listener: l.name, direction: 'to_client' }, l.stats.bytesToClient);
        }
      },
    });
    new Counter({
      name: 'proxy_connect_failures_total',
      help: 'Failed connect attempts to a target, by error code (ECONNREFUSED, ETIMEDOUT, ...).',
      labelNames: ['listener', 'target', 'code'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) {
          for (const target of l.targets) {
            for (const [code, n] of Object.entries(target.failures)) {
              this.inc({ listener: l.name, target: target.address, code }, n);
            }
          }
        }
      },
    });
    new Counter({
      name: 'proxy_accept_errors_total',
      help: 'Errors reported by accept(), by code (EMFILE, ENFILE, ...).',
      labelNames: ['listener', 'code'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) {
          for (const [code, n] of Object.entries(l.stats.acceptErrors)) {
            this.inc({ listener: l.name, code }, n);
          }
        }
      },
    });
    new Gauge({
      name: 'proxy_target_drained',
      help: '1 when an operator took the target out of rotation, else 0.',
      labelNames: ['listener', 'target'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) {
          for (const t of l.targets) {
            this.set({ listener: l.name, target: t.address }, t.state === 'drained' ? 1 : 0);
          }
        }
      },
    });
    new Gauge({
      name: 'proxy_target_up',
      help: '1 when the target takes new connections (not down, not drained), else 0.',
      labelNames: ['listener', 'target'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) {
          for (const t of l.targets) {
            this.set({ listener: l.name, target: t.address }, t.state === 'up' ? 1 : 0);
          }
        }
      },
    });
    new Gauge({
      name: 'proxy_target_connections',
      help: 'Connections open to the target now.',
      labelNames: ['listener', 'target'],
      registers,
      collect() {
        this.reset();
        for (const l of metrics.#listeners()) {
          for (const t of l.targets) {
            this.set({ listener: l.name, target: t.address }, t.connections);
          }
        }
      },
    });
  }

  #listeners(): readonly ListenerInfo[] {
    return this.#current;
  }

  /** contentType is the exposition format's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** render returns the exposition text: the view is read once, then every metric is collected. */
  async render(): Promise<string> {
    this.#current = await this.#view.listenerInfo();
    const histograms = await this.#histograms.histograms();
    return promClient().Registry.merge([this.registry, histograms]).metrics();
  }
}
