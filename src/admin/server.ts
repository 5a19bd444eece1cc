/**
 * The admin HTTP server: a JSON API, Prometheus metrics and a status page for one
 * running proxy. Off unless asked for (`--admin 127.0.0.1:9090`).
 *
 * Routes only translate requests into calls on the proxy (listenerInfo,
 * connections, closeConnection, setTargetDrained) or on the `reload` callback the
 * CLI passes in (AdminOptions), and map the answers to
 * HTTP. The proxy is seen through a `ProxyView` (./view.ts): a `TcpProxy` in this
 * process, or, with `--workers N`, the primary's view of all its workers, whose
 * answers arrive over IPC (hence every call is awaited). No handler waits on a
 * proxied socket: closing a connection destroys it at once, so an action never
 * blocks on a stuck peer.
 *
 * Security: with a token every request must carry `Authorization: Bearer TOKEN`,
 * compared in constant time. Without a token the server may only listen on loopback
 * or on a Unix socket (checked where the options are validated, and again here).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Address, formatParsed, isLoopbackHost } from '../config/address.js';
import { connectionRecord } from '../connection-info.js';
import { errorCode, listenErrorText, ProxyError } from '../errors.js';
import type { ListenerInfo, ReloadResult, TcpProxy } from '../index.js';
import { VERSION } from '../version.js';
import { ConnectionHistograms, ProxyMetrics } from './metrics.js';
import { STATUS_PAGE } from './status-page.js';
import type { HistogramSource, ProxyView } from './view.js';

/** AdminOptions configure the admin server. */
export interface AdminOptions {
  /** listen: where to serve; must be loopback unless `token` is set. */
  listen: Address;
  /** token: required as `Authorization: Bearer TOKEN` on every request when set. */
  token?: string | undefined;
  /** reload: what `POST /api/reload` runs (the CLI re-reads its config file). */
  reload?: (() => Promise<ReloadResult>) | undefined;
  /**
   * histograms: where /metrics gets its latency histograms. Default: observed from
   * the proxy's own connection events, which needs a `TcpProxy` in this process.
   */
  histograms?: HistogramSource | undefined;
  /** onError hears errors of the admin server once it listens (failed accepts); it keeps serving. */
  onError?: ((err: Error) => void) | undefined;
}

/** HttpError is an error with the status the client gets and a JSON body `{ error }`. */
class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

// The one table from our error codes to HTTP statuses (as toxiproxy's api.go).
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  PROXY_ERR_INVALID_CONFIG: 422,
  PROXY_ERR_LISTEN: 422,
  PROXY_ERR_CLOSED: 409,
  PROXY_ERR_WORKER: 503,
};

type Handler = (request: AdminRequest) => Promise<Reply> | Reply;
interface AdminRequest {
  params: string[];
  query: URLSearchParams;
}
interface Reply {
  status: number;
  body?: unknown;
  text?: string;
  contentType?: string;
}

interface Route {
  pattern: RegExp;
  methods: Partial<Record<string, Handler>>;
}

/**
 * AdminServer serves the admin API of one proxy: a `TcpProxy`, or any `ProxyView`
 * given together with its `histograms`.
 */
export class AdminServer {
  readonly #proxy: ProxyView;
  readonly #options: AdminOptions;
  readonly #server: Server;
  readonly #metrics: ProxyMetrics;
  /** #ownHistograms: made here (no `histograms` option), so detached on close(). */
  readonly #ownHistograms: ConnectionHistograms | undefined;
  readonly #tokenDigest: Buffer | null;
  readonly #routes: Route[];

  constructor(proxy: TcpProxy, options: AdminOptions);
  constructor(proxy: ProxyView, options: AdminOptions & { histograms: HistogramSource });
  constructor(proxy: TcpProxy | ProxyView, options: AdminOptions) {
    const host = options.listen.path === undefined ? options.listen.host : undefined;
    if (options.token === undefined && options.listen.path === undefined && !isLoopbackHost(host)) {
      throw new ProxyError(
        'PROXY_ERR_INVALID_CONFIG',
        `admin: refusing to serve on ${formatParsed(options.listen)} without a token (use --admin-token-file)`,
      );
    }
    this.#proxy = proxy;
    this.#options = options;
    // Without a source given, the overloads guarantee a TcpProxy, whose events we observe
    // until close().
    this.#ownHistograms =
      options.histograms === undefined ? new ConnectionHistograms(proxy as TcpProxy) : undefined;
    const histograms: HistogramSource =
      options.histograms ?? (this.#ownHistograms as HistogramSource);
    this.#metrics = new ProxyMetrics(proxy, histograms);
    this.#tokenDigest = options.token === undefined ? null : digest(options.token);
    this.#routes = this.#buildRoutes();
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        send(res, { status: 500, body: { error: `internal error: ${String(err)}` } });
      });
    });
    // A server error once listening (an accept that failed: EMFILE, ENFILE) must never
    // crash the proxy it watches: reported through `options.onError`, and serving goes on.
    // Before that, listen() reports the error itself.
    this.#server.on('error', (err: Error) => {
      if (this.#server.listening) options.onError?.(err);
    });
  }

  /** listen binds the admin address; rejects with PROXY_ERR_LISTEN naming it. */
  async listen(): Promise<void> {
    const listen = this.#options.listen;
    const server = this.#server;
    if (listen.path !== undefined) server.listen({ path: listen.path });
    else server.listen({ host: listen.host, port: listen.port });
    try {
      await once(server, 'listening');
    } catch (err) {
      const what = listenErrorText(err);
      throw new ProxyError('PROXY_ERR_LISTEN', `admin listen ${formatParsed(listen)}: ${what}`, {
        cause: err,
      });
    }
  }

  /** address is the bound address, or null. */
  address(): AddressInfo | null {
    const address = this.#server.address();
    return typeof address === 'object' ? address : null;
  }

  /** close stops the admin server and ends its keep-alive connections. */
  close(): Promise<void> {
    this.#ownHistograms?.detach();
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume(); // no route reads a body; discard whatever was sent
    try {
      // The page itself holds no data (it asks the API, with the token), so a browser
      // can open it; everything else needs the token.
      if (!isStatusPage(req)) this.#authorize(req);
      const reply = await this.#route(req);
      send(res, reply);
    } catch (err) {
      if (err instanceof HttpError) {
        send(res, { status: err.status, body: { error: err.message } }, err.headers);
        return;
      }
      const status = STATUS_BY_CODE[errorCode(err)] ?? 500;
      send(res, { status, body: { error: err instanceof Error ? err.message : String(err) } });
    }
  }

  #authorize(req: IncomingMessage): void {
    if (this.#tokenDigest === null) return;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    // Compare digests of equal length in constant time: no timing hint about the token.
    if (match?.[1] === undefined || !timingSafeEqual(digest(match[1]), this.#tokenDigest)) {
      throw new HttpError(401, 'missing or wrong token', { 'WWW-Authenticate': 'Bearer' });
    }
  }

  #route(req: IncomingMessage): Promise<Reply> | Reply {
    let url: URL;
    try {
      // Prefix the origin rather than resolve against it: "//x" must stay a path, not a host.
      url = new URL(`http://admin.invalid${req.url ?? '/'}`);
    } catch {
      throw new HttpError(400, `malformed request target ${JSON.stringify(req.url)}`);
    }
    for (const route of this.#routes) {
      const match = route.pattern.exec(url.pathname);
      if (match === null) continue;
      const method = req.method ?? 'GET';
      const handler =
        route.methods[method] ?? (method === 'HEAD' ? route.methods['GET'] : undefined);
      if (handler === undefined) {
        const allowed = Object.keys(route.methods).join(', ');
        throw new HttpError(405, `${method} is not allowed on ${url.pathname}; use ${allowed}`, {
          Allow: allowed,
        });
      }
      const params = match.slice(1).map((part) => decodePart(part));
      return handler({ params, query: url.searchParams });
    }
    throw new HttpError(404, `no such path: ${url.pathname}`);
  }

  #buildRoutes(): Route[] {
    const proxy = this.#proxy;
    return [
      {
        pattern: /^\/$/,
        methods: {
          GET: () => ({ status: 200, text: STATUS_PAGE, contentType: 'text/html; charset=utf-8' }),
        },
      },
      {
        pattern: /^\/metrics$/,
        methods: {
          GET: async () => ({
            status: 200,
            text: await this.#metrics.render(),
            contentType: this.#metrics.contentType,
          }),
        },
      },
      {
        pattern: /^\/api\/status$/,
        methods: {
          GET: async () => ({
            status: 200,
            body: {
              version: VERSION,
              uptime_ms: Math.round(proxy.uptimeMs()),
              connections_active: (await proxy.connections()).length,
            },
          }),
        },
      },
      {
        pattern: /^\/api\/listeners$/,
        methods: {
          GET: async () => ({ status: 200, body: (await proxy.listenerInfo()).map(listenerJson) }),
        },
      },
      {
        pattern: /^\/api\/connections$/,
        methods: {
          GET: async () => ({
            status: 200,
            body: (await proxy.connections()).map(connectionRecord),
          }),
        },
      },
      {
        pattern: /^\/api\/connections\/([^/]+)$/,
        methods: {
          DELETE: async ({ params: [id = ''], query }) => {
            const reset = query.get('reset');
            if (reset !== null && reset !== '0' && reset !== '1') {
              throw new HttpError(400, `reset must be 0 or 1, got ${JSON.stringify(reset)}`);
            }
            if (!(await proxy.closeConnection(id, { reset: reset === '1' }))) {
              throw new HttpError(404, `no open connection with id ${JSON.stringify(id)}`);
            }
            return { status: 204 };
          },
        },
      },
      {
        pattern: /^\/api\/listeners\/([^/]+)\/targets\/([^/]+)\/(drain|undrain)$/,
        methods: {
          POST: async ({ params: [name = '', address = '', action] }) => {
            const result = await proxy.setTargetDrained(name, address, action === 'drain');
            if (result === 'no_listener')
              throw new HttpError(404, `no listener named ${JSON.stringify(name)}`);
            if (result === 'no_target') {
              throw new HttpError(
                404,
                `listener ${JSON.stringify(name)} has no target ${JSON.stringify(address)}`,
              );
            }
            return { status: 200, body: result };
          },
        },
      },
      {
        pattern: /^\/api\/reload$/,
        methods: {
          POST: async () => {
            const reload = this.#options.reload;
            if (reload === undefined)
              throw new HttpError(
                422,
                'nothing to reload: the proxy was not started with --config',
              );
            return { status: 200, body: await reload() };
          },
        },
      },
    ];
  }
}

function isStatusPage(req: IncomingMessage): boolean {
  return (
    (req.method === 'GET' || req.method === 'HEAD') &&
    (req.url === '/' || req.url?.startsWith('/?') === true)
  );
}

function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, `malformed percent-encoding in ${JSON.stringify(part)}`);
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function send(res: ServerResponse, reply: Reply, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  if (reply.text !== undefined) {
    res.writeHead(reply.status, { 'Content-Type': reply.contentType ?? 'text/plain', ...headers });
    res.end(reply.text);
  } else if (reply.body !== undefined) {
    res.writeHead(reply.status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify(reply.body));
  } else {
    res.writeHead(reply.status, headers);
    res.end();
  }
}

function listenerJson(l: ListenerInfo) {
  return {
    name: l.name,
    listen: l.listen,
    address: l.address,
    idle_timeout_ms: l.idleTimeoutMs,
    half_close_timeout_ms: l.halfCloseTimeoutMs,
    connect_timeout_ms: l.connectTimeoutMs,
    shutdown_timeout_ms: l.shutdownTimeoutMs,
    max_connections: l.maxConnections,
    targets: l.targets,
    connections_accepted: l.stats.accepted,
    connections_active: l.stats.active,
    connections_closed: l.stats.closed,
    bytes_to_upstream: l.stats.bytesToUpstream,
    bytes_to_client: l.stats.bytesToClient,
    connect_failures: l.stats.connectFailures,
  };
}
