/**
 * createProxy, on its own: what both the library entry (index.ts) and the command
 * (cli.ts) use. The command imports it from here rather than from index.ts so that
 * starting a proxy does not load the admin server, which index.ts also exports.
 *
 * `TcpProxy` is what a library user may call: an interface, so that the `Supervisor`
 * class behind it (its logger, timer set and configuration in force) stays internal
 * and can change without breaking anyone. The command, which owns the process, works
 * with the `Supervisor` itself (`createSupervisor`).
 */
import type { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { type ProxyOptions, resolveOptions } from './config/config.js';
import type { ConnectionInfo } from './connection-info.js';
import type { ConnectionHandle } from './faults/connection-handle.js';
import type { ToxicsHandle } from './faults/typed-toxics.js';
import { Logger } from './log.js';
import type {
  CloseOptions,
  ListenerInfo,
  ListenOptions,
  ProxyEvents,
  ProxyStats,
  ReloadResult,
  TargetInfo,
} from './proxy-info.js';
import { Supervisor } from './supervisor.js';

/**
 * TcpProxy is a proxy as createProxy returns it: what a program embedding it may call.
 * It is an EventEmitter of `ProxyEvents` (so `events.once(proxy, 'connectionClose')` works).
 */
export interface TcpProxy extends EventEmitter<ProxyEvents> {
  /**
   * listen binds every listener, all or none: if one cannot bind, the others are
   * closed again and the promise rejects (`PROXY_ERR_LISTEN`).
   */
  listen(options?: ListenOptions): Promise<TcpProxy>;
  /** address is the first listener's bound TCP address (after `listen()`). */
  address(): AddressInfo;
  /** addresses maps each listener's name to its bound TCP address (null for `unix:`). */
  addresses(): Record<string, AddressInfo | null>;
  /**
   * close stops accepting at once; open connections finish within each listener's
   * shutdown timeout (`graceful`, the default) or are closed at once.
   */
  close(options?: CloseOptions): Promise<void>;
  /** Symbol.asyncDispose closes the proxy at once, for `await using proxy = ...`. */
  [Symbol.asyncDispose](): Promise<void>;
  /** connections lists every open connection. */
  connections(): ConnectionInfo[];
  /** stats sums the counters of all listeners and lists each one's own, by name. */
  stats(): ProxyStats;
  /** listenerInfo describes every listener: its options, targets and counters. */
  listenerInfo(): ListenerInfo[];
  /** uptimeMs is the time since the proxy was created. */
  uptimeMs(): number;
  /** closeConnection closes one open connection (cause `admin_kill`); false if no such id. */
  closeConnection(id: string, options?: { reset?: boolean }): boolean;
  /** setTargetDrained takes a target out of rotation (`drained`) or puts it back. */
  setTargetDrained(
    listener: string,
    address: string,
    drained: boolean,
  ): TargetInfo | 'no_listener' | 'no_target';
  /**
   * reload applies new options of the same shape as createProxy's: listeners are
   * added, removed and changed; open connections keep flowing. A reload that cannot
   * bind changes nothing.
   */
  reload(options: ProxyOptions): Promise<ReloadResult>;

  // Deterministic faults for tests (docs/testing.md). `listener` names a listener;
  // by default the first. An unknown name throws PROXY_ERR_INVALID_CONFIG.

  /**
   * toxics is the listener's toxics, typed: the same list the Toxiproxy HTTP API
   * changes (docs/faults.md). A change acts on open connections at once.
   */
  toxics(listener?: string): ToxicsHandle;
  /**
   * nextConnection resolves when the next client of the listener is accepted, its
   * upstream connected, and it relays: with a handle that can pause, cut, reset and
   * close it, add toxics to it only, and await its bytes and its close. Each call
   * waits for its own connection (calls are served in order).
   */
  nextConnection(listener?: string): Promise<ConnectionHandle>;
  /**
   * refuseNext: the next `n` clients the listener accepts are reset (RST) at once,
   * before any upstream is dialled: the client sees ECONNRESET (or its connection
   * closed). Close record cause `toxic`. Adds to a count still pending.
   */
  refuseNext(n: number, listener?: string): void;
  /**
   * hangNext: the next `n` clients the listener accepts (after any still to be
   * refused) are never dialled: they stay open, sending and getting nothing, until
   * the client leaves (cause `client_fin` or `client_reset`) or the proxy closes
   * (`shutdown`): a connect timeout, as the client sees it.
   */
  hangNext(n: number, listener?: string): void;
}

/**
 * createProxy validates `options` and returns a proxy that is not yet listening;
 * call `listen()`. Invalid options throw a ProxyError with code
 * `PROXY_ERR_INVALID_CONFIG` whose message names the option.
 */
export function createProxy(options: ProxyOptions): TcpProxy {
  return createSupervisor(options);
}

/** createSupervisor is createProxy for the command: the whole Supervisor, logger included. */
export function createSupervisor(options: ProxyOptions): Supervisor {
  const config = resolveOptions(options);
  const log = new Logger({ level: 'silent', ...options.log });
  return new Supervisor(config, log);
}
