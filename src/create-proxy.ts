/**
 * createProxy, on its own: what both the library entry (index.ts) and the command
 * (cli.ts) use. The command imports it from here rather than from index.ts so that
 * starting a proxy does not load the admin server, which index.ts also exports.
 */
import { type ProxyOptions, resolveOptions } from './config/config.js';
import { Logger } from './log.js';
import { Supervisor } from './supervisor.js';

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
