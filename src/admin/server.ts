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
 * Whatever the token, a request for another host name or a cross-site request that
 * would change something is refused with 403 (./guard.ts: DNS rebinding, CSRF).
 * `/healthz`, `/readyz` and the status page need no token.
 *
 * Resources: the admin server shares the event loop with the data path, so what a
 * client can make it spend is bounded. Only Toxiproxy's routes read a request body,
 * at most 1 MiB, once the request has passed every check. Elsewhere a request that
 * carries one is answered without reading it and its connection is closed (a
 * declared body over 1 MiB gets 413; `Expect: 100-continue` is granted only where a
 * body is read). Headers must arrive within 5 s, a whole request within 10 s, an
 * idle keep-alive connection is closed after 5 s, and at most 64
 * admin connections are open at once (further ones are closed on accept).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Address, formatParsed, isLoopbackHost } from '../config/address.js';
import { jsonKey, SETTING_NAMES } from '../config/options.js';
import { connectionRecord } from '../connection-info.js';
import type { TcpProxy } from '../create-proxy.js';
import { errorCode, listenErrorText, ProxyError } from '../errors.js';
import { toxicJson } from '../faults/toxic.js';
import type { ListenerInfo, ReloadResult } from '../proxy-info.js';
import { isToxiproxyProxy, localToxiproxyHost } from '../toxiproxy-host.js';
import {
  removeStaleSocket,
  type SocketFile,
  socketFile,
  unlinkSocketFile,
} from '../unix-socket.js';
import { VERSION } from '../version.js';
import { RequestGuard } from './guard.js';
import { ConnectionHistograms, ProxyMetrics } from './metrics.js';
import { STATUS_PAGE } from './status-page.js';
import { isToxiproxyPath, ToxiproxyApi, type ToxiproxyHost } from './toxiproxy-api.js';
import type { Awaitable, HistogramSource, ProxyView } from './view.js';

/** MAX_BODY_BYTES is the largest request body the admin server accepts (1 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** MAX_ADMIN_CONNECTIONS bounds the admin server's open connections; more are closed on accept. */
export const MAX_ADMIN_CONNECTIONS = 64;
// Node checks these deadlines every CHECK_INTERVAL_MS (its default is 30 s).
const HEADERS_TIMEOUT_MS = 5000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5000;
const CHECK_INTERVAL_MS = 1000;
const MAX_REQUESTS_PER_SOCKET = 1000;

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
  /**
   * hosts: host names, besides the admin's own address and the loopback names, that
   * requests may carry in `Host` (`--admin-host`); any other gets 403. Default: none.
   */
  hosts?: readonly string[] | undefined;
  /**
   * ready: what `GET /readyz` asks (200 when true, else 503): every listener bound
   * and not shutting down. Default: ready while the admin server runs; the CLI passes
   * the proxy's own state.
   */
  ready?: (() => Awaitable<boolean>) | undefined;
  /** onStaleSocket hears that a Unix socket file nobody answered on was removed before binding. */
  onStaleSocket?: ((path: string) => void) | undefined;
  /**
   * toxiproxy: what Toxiproxy's API (./toxiproxy-api.ts) creates, changes and removes
   * listeners and toxics on. Default: the proxy itself when it can (a `Supervisor`);
   * otherwise those routes answer 501. With `--workers N`, the primary's `ClusterToxiproxy`.
   */
  toxiproxy?: ToxiproxyHost | undefined;
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

// Paths that answer GET and HEAD without a token: the probes, and the status page,
// which holds no data itself (it asks the API, with the token).
const PUBLIC_PATHS = new Set(['/', '/healthz', '/readyz']);

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
  readonly #guard: RequestGuard;
  readonly #toxiproxy: ToxiproxyApi;
  /** #socketFile: the Unix socket file this server bound, removed again on close/exit. */
  #socketFile: SocketFile | null = null;

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
    this.#guard = new RequestGuard(options.listen, options.hosts);
    this.#toxiproxy = new ToxiproxyApi(options.toxiproxy ?? toxiproxyHostOf(proxy));
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      this.#handle(req, res).catch((err: unknown) => {
        send(res, { status: 500, body: { error: `internal error: ${String(err)}` } });
      });
    };
    this.#server = createServer(
      {
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: CHECK_INTERVAL_MS,
      },
      onRequest,
    );
    this.#server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    this.#server.maxRequestsPerSocket = MAX_REQUESTS_PER_SOCKET;
    this.#server.maxConnections = MAX_ADMIN_CONNECTIONS;
    // Handled like any request; "100 Continue" is granted only by a route that reads the body.
    this.#server.on('checkContinue', onRequest);
    // A server error once listening (an accept that failed: EMFILE, ENFILE) must never
    // crash the proxy it watches: reported through `options.onError`, and serving goes on.
    // Before that, listen() reports the error itself.
    this.#server.on('error', (err: Error) => {
      if (this.#server.listening) options.onError?.(err);
    });
  }

  /**
   * listen binds the admin address; rejects with PROXY_ERR_LISTEN naming it. A Unix
   * socket file that nobody answers on (left by a process that died) is removed first,
   * as listeners do; anything else at the path is left alone.
   */
  async listen(): Promise<void> {
    const listen = this.#options.listen;
    try {
      await this.#bind();
    } catch (err) {
      const path = listen.path;
      if (path === undefined || errorCode(err) !== 'EADDRINUSE') throw listenError(listen, err);
      // The same rule as a listener's: only a socket file nobody answers on is removed.
      const removed = await removeStaleSocket(path).catch((why: unknown) => {
        throw listenError(listen, why);
      });
      if (!removed) throw listenError(listen, err);
      this.#options.onStaleSocket?.(path);
      await this.#bind().catch((again: unknown) => {
        throw listenError(listen, again);
      });
    }
    if (listen.path !== undefined) this.#socketFile = socketFile(listen.path);
  }

  async #bind(): Promise<void> {
    const listen = this.#options.listen;
    const server = this.#server;
    if (listen.path !== undefined) server.listen({ path: listen.path });
    else server.listen({ host: listen.host, port: listen.port });
    await once(server, 'listening');
  }

  /** listenAddress is the configured address as logs print it (`unix:/path`, `127.0.0.1:9090`). */
  get listenAddress(): string {
    return formatParsed(this.#options.listen);
  }

  /** address is the bound address, or null (also for a Unix socket). */
  address(): AddressInfo | null {
    const address = this.#server.address();
    return typeof address === 'object' ? address : null;
  }

  /**
   * close stops the admin server and ends its keep-alive connections; its Unix socket
   * file, if it listens on one, is removed.
   */
  close(): Promise<void> {
    this.#ownHistograms?.detach();
    return new Promise((resolve) => {
      this.#server.close(() => {
        this.removeSocketFile();
        resolve();
      });
      this.#server.closeAllConnections();
    });
  }

  /**
   * removeSocketFile removes the Unix socket file this server bound, if the path
   * still names that very file (another process may have bound it since). For a
   * process that exits without close() (process.exit closes no server, and the file
   * would block the next start); synchronous, so it can run in an 'exit' listener.
   */
  removeSocketFile(): void {
    if (this.#socketFile !== null) unlinkSocketFile(this.#socketFile);
    this.#socketFile = null;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Only Toxiproxy's routes read a body (at most MAX_BODY_BYTES, after every check).
    // Another route leaves it unread, and the connection is closed after the answer
    // (reading it only to keep the connection would let any client, even one without
    // the token, make us read without end).
    if (hasBody(req)) res.shouldKeepAlive = false;
    try {
      const url = this.#check(req);
      if (!isPublic(req, url)) this.#authorize(req);
      checkBodySize(req);
      const reply = await this.#route(req, res, url);
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

  /** #check refuses what no route may answer (wrong host, cross-site) and parses the URL. */
  #check(req: IncomingMessage): URL {
    const headers = req.headers;
    const refusal =
      this.#guard.hostRefusal(headers.host) ??
      this.#guard.crossSiteRefusal(
        req.method ?? 'GET',
        headers.host,
        headers.origin,
        single(headers['sec-fetch-site']),
      );
    if (refusal !== null) throw new HttpError(403, refusal);
    try {
      // Prefix the origin rather than resolve against it: "//x" must stay a path, not a host.
      return new URL(`http://admin.invalid${req.url ?? '/'}`);
    } catch {
      throw new HttpError(400, `malformed request target ${JSON.stringify(req.url)}`);
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

  #route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<Reply> | Reply {
    if (isToxiproxyPath(url.pathname)) {
      return this.#toxiproxy.handle({
        method: req.method ?? 'GET',
        segments: url.pathname.slice(1).split('/').map(decodePart),
        body: () => readBody(req, res),
      });
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
        // Liveness: answering at all means the event loop runs.
        pattern: /^\/healthz$/,
        methods: { GET: () => ({ status: 200, text: 'ok\n' }) },
      },
      {
        pattern: /^\/readyz$/,
        methods: {
          GET: async () => {
            const ready = (await this.#options.ready?.()) ?? true;
            return ready ? { status: 200, text: 'ready\n' } : { status: 503, text: 'not ready\n' };
          },
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

function isPublic(req: IncomingMessage, url: URL): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && PUBLIC_PATHS.has(url.pathname);
}

/** hasBody: the request says a body follows (a length above 0, or chunks). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** checkBodySize refuses a declared body over MAX_BODY_BYTES with 413 (after the token: no hint without it). */
function checkBodySize(req: IncomingMessage): void {
  const length = Number(req.headers['content-length'] ?? 0);
  if (length > MAX_BODY_BYTES) {
    throw new HttpError(413, `request body too large: ${length} bytes, at most ${MAX_BODY_BYTES}`);
  }
}

/**
 * readBody reads a request body of at most MAX_BODY_BYTES (a chunked one is counted
 * as it comes) as UTF-8; more is refused with 413 and the rest is left unread (the
 * connection closes after the answer).
 */
function readBody(req: IncomingMessage, res: ServerResponse): Promise<string> {
  // Asked only now, after every check: curl waits a second for this before a body over 1 KiB.
  if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.pause();
      reject(new HttpError(413, `request body too large: more than ${MAX_BODY_BYTES} bytes`));
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    // A client gone mid-body: nobody reads the answer, but the promise must settle.
    req.once('close', () => reject(new HttpError(400, 'request body incomplete')));
  });
}

/** toxiproxyHostOf: the proxy itself, when it can create and remove listeners (a Supervisor). */
function toxiproxyHostOf(proxy: TcpProxy | ProxyView): ToxiproxyHost | undefined {
  return isToxiproxyProxy(proxy) ? localToxiproxyHost(proxy) : undefined;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function listenError(listen: Address, err: unknown): ProxyError {
  const what = listenErrorText(err);
  return new ProxyError('PROXY_ERR_LISTEN', `admin listen ${formatParsed(listen)}: ${what}`, {
    cause: err,
  });
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
    state: l.state,
    listen: l.listen,
    address: l.address,
    // Every listener setting of the option table, by its snake_case name (idle_timeout_ms).
    ...Object.fromEntries(SETTING_NAMES.map((name) => [jsonKey(name), l[name]])),
    targets: l.targets,
    routes: l.routes,
    connections_accepted: l.stats.accepted,
    connections_active: l.stats.active,
    connections_closed: l.stats.closed,
    bytes_to_upstream: l.stats.bytesToUpstream,
    bytes_to_client: l.stats.bytesToClient,
    connect_failures: l.stats.connectFailures,
    // Toxiproxy's JSON for each toxic, only on a listener that has any.
    ...(l.toxics === undefined ? {} : { toxics: l.toxics.map(toxicJson) }),
  };
}
