/**
 * What the admin server needs from a proxy, and nothing more. A `Supervisor` (one
 * process: what `createProxy()` returns) is a `ProxyView` as it is, answering at once;
 * with `--workers N` the primary process holds a `ClusterView` (src/cluster-view.ts)
 * that asks every worker process over the cluster's IPC channel and merges the answers,
 * so each method may return a promise.
 */
import type { Registry } from 'prom-client';
import type { ConnectionInfo } from '../connection-info.js';
import type { ListenerInfo, TargetInfo } from '../proxy-info.js';

/** Awaitable is a value now, or later. */
export type Awaitable<T> = T | Promise<T>;

/** ProxyView is the part of a proxy the admin server and its metrics read and act on. */
export interface ProxyView {
  /** uptimeMs is the time since the proxy (or the primary process) started. */
  uptimeMs(): number;
  /** connections lists every open connection; ids are unique within the view. */
  connections(): Awaitable<readonly ConnectionInfo[]>;
  /** listenerInfo describes every listener, with its counters. */
  listenerInfo(): Awaitable<readonly ListenerInfo[]>;
  /** closeConnection closes one open connection (cause `admin_kill`); false if no such id. */
  closeConnection(id: string, options?: { reset?: boolean }): Awaitable<boolean>;
  /** setTargetDrained takes a target out of rotation or puts it back. */
  setTargetDrained(
    listener: string,
    address: string,
    drained: boolean,
  ): Awaitable<TargetInfo | 'no_listener' | 'no_target'>;
}

/**
 * HistogramSource supplies the two latency histograms when /metrics is scraped, as a
 * prom-client registry: one process's own (`ConnectionHistograms`), or several
 * processes' merged.
 */
export interface HistogramSource {
  histograms(): Awaitable<Registry>;
}
