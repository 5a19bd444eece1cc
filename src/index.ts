/**
 * The library entry: `createProxy()` and the types that go with it. The `l4proxy`
 * command is built on exactly this API.
 *
 *     import { createProxy } from 'l4proxy';
 *     const proxy = createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9000'] });
 *     await proxy.listen();
 *     console.log(proxy.address()); // { address: '127.0.0.1', port: 4xxxx, family: 'IPv4' }
 *     await proxy.close();
 */
import { type ProxyOptions, resolveOptions } from './config/config.js';
import { Logger } from './log.js';
import { Supervisor } from './supervisor.js';

export type { AdminOptions } from './admin/server.js';
export { AdminServer } from './admin/server.js';
export type { Awaitable, HistogramSource, ProxyView } from './admin/view.js';
export type { CloseCause } from './close-cause.js';
export { CLOSE_CAUSES } from './close-cause.js';
export type { ListenerOptions, ProxyOptions, TargetOption } from './config/config.js';
export { DEFAULTS } from './config/config.js';
export type { ConnectionInfo, ContextState } from './connection-info.js';
export { connectionRecord } from './connection-info.js';
export type { ProxyErrorCode } from './errors.js';
export { ProxyError } from './errors.js';
export type { LogFormat, LoggerOptions, LogLevel } from './log.js';
export type { StatsSnapshot } from './stats.js';
export type {
  CloseOptions,
  ListenerInfo,
  ListenOptions,
  ProxyEvents,
  ProxyStats,
  ReloadResult,
  TargetInfo,
} from './supervisor.js';
export { NAME, VERSION } from './version.js';

/** TcpProxy is what createProxy returns: listen(), address(), close(), connections(), stats() and events. */
export type TcpProxy = Supervisor;

/**
 * createProxy validates `options` and returns a proxy that is not yet listening;
 * call `listen()`. Invalid options throw a ProxyError with code
 * `PROXY_ERR_INVALID_CONFIG` whose message names the option.
 */
export function createProxy(options: ProxyOptions): TcpProxy {
  const config = resolveOptions(options);
  const log = new Logger({ level: 'silent', ...options.log });
  return new Supervisor(config, log);
}
