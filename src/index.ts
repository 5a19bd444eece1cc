/**
 * The library entry: `createProxy()` and the types that go with it. The `l4proxy`
 * command is built on exactly this API.
 *
 *     import { createProxy } from 'l4proxy';
 *     const proxy = createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9000'] });
 *     await proxy.listen();
 *     console.log(proxy.address()); // { address: '127.0.0.1', port: 4xxxx, family: 'IPv4' }
 *     await proxy.close();
 *
 * Importing it loads no YAML parser, schema validator or Prometheus client: the
 * config file is the command's (config/file.ts), and an AdminServer loads prom-client
 * when one is made (admin/metrics.ts).
 */
export type { AdminOptions } from './admin/server.js';
export { AdminServer } from './admin/server.js';
export type { Awaitable, HistogramSource, ProxyView } from './admin/view.js';
export type { CloseCause } from './close-cause.js';
export { CLOSE_CAUSES } from './close-cause.js';
export type { ListenerOptions, ProxyOptions, RouteOption, TargetOption } from './config/config.js';
export { DEFAULTS } from './config/config.js';
export type { ConnectionInfo, ContextState } from './connection-info.js';
export { connectionRecord } from './connection-info.js';
export type { TcpProxy } from './create-proxy.js';
export { createProxy } from './create-proxy.js';
export type { ProxyErrorCode } from './errors.js';
export { ProxyError } from './errors.js';
export type { ConnectionHandle } from './faults/connection-handle.js';
export type { Toxic, ToxicType } from './faults/toxic.js';
export type { ToxicInput, ToxicInputOf, ToxicsHandle, ToxicUpdate } from './faults/typed-toxics.js';
export type { LogFormat, LoggerOptions, LogLevel } from './log.js';
export type {
  CloseOptions,
  ListenerInfo,
  ListenerState,
  ListenOptions,
  ProxyEvents,
  ProxyStats,
  ReloadResult,
  RouteInfo,
  TargetInfo,
} from './proxy-info.js';
export type { Stream } from './stage.js';
export type { StatsSnapshot } from './stats.js';
export { NAME, VERSION } from './version.js';
