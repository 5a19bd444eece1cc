/**
 * Shopify Toxiproxy's HTTP API, version 2, at the admin server's root, so that every
 * Toxiproxy client (toxiproxy-node-client, the Go client, toxiproxy-cli,
 * Testcontainers) works unchanged. Routes, bodies, defaults, status codes and error
 * bodies (`{"error": ..., "status": N}`) follow Toxiproxy's api.go,
 * proxy_collection.go and toxic_collection.go; the code is our own.
 *
 * A Toxiproxy "proxy" is a listener with its targets: `listen` is its address (the
 * bound one once it listens), `upstream` its targets joined by commas (one target,
 * for a proxy created here), `enabled` whether it listens. Listeners from flags or
 * the config file are listed too. The proxy is reached only through a `ToxiproxyHost`
 * (toxiproxy-host.ts): a `Supervisor` in a single process, or with `--workers N` the
 * primary's `ClusterToxiproxy`, which applies every change in every worker. Every
 * route answers at once: none waits on a proxied socket.
 *
 * The admin server runs its checks first (Host, Origin, token, body size), so these
 * routes are as safe as the others; Toxiproxy's clients send no Origin header.
 */
import { errorCode } from '../errors.js';
import {
  apiText,
  parseToxic,
  type Toxic,
  ToxicError,
  toxicJson,
  toxicNotFound,
  updateToxic,
} from '../faults/toxic.js';
import type { ListenerChange, ListenerInfo } from '../proxy-info.js';
import type { ToxicChange, ToxiproxyHost } from '../toxiproxy-host.js';
import { VERSION } from '../version.js';

export type { ToxiproxyHost } from '../toxiproxy-host.js';

/** ToxiproxyRequest is one request as the admin server hands it over, the body read on demand. */
export interface ToxiproxyRequest {
  method: string;
  /** segments: the path split at `/`, percent-decoded (`['proxies', 'redis', 'toxics']`). */
  segments: readonly string[];
  /** body reads the request body (at most 1 MiB; the admin server refuses more with 413). */
  body(): Promise<string>;
}

/** ToxiproxyReply is the answer: a status and a JSON body, or a text. */
export interface ToxiproxyReply {
  status: number;
  body?: unknown;
  text?: string;
  contentType?: string;
}

/** ApiError is Toxiproxy's error: its message and status, sent as `{"error", "status"}`. */
class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const proxyNotFound = () => new ApiError(404, 'proxy not found');
const proxyExists = () => new ApiError(409, 'proxy already exists');
const missingField = (what: string) => new ApiError(400, `missing required field: ${what}`);
const notAllowed = () => new ApiError(405, 'method not allowed');

/** isToxiproxyPath: the paths Toxiproxy's API owns (`/version`, `/reset`, `/populate`, `/proxies...`). */
export function isToxiproxyPath(path: string): boolean {
  return (
    path === '/version' ||
    path === '/reset' ||
    path === '/populate' ||
    path === '/proxies' ||
    path.startsWith('/proxies/')
  );
}

/** ToxiproxyApi answers Toxiproxy's routes; without a host (a proxy that cannot make listeners) they answer 501. */
export class ToxiproxyApi {
  readonly #host: ToxiproxyHost | undefined;

  constructor(host: ToxiproxyHost | undefined) {
    this.#host = host;
  }

  /** handle answers one request; errors become Toxiproxy's `{"error", "status"}` bodies. */
  async handle(request: ToxiproxyRequest): Promise<ToxiproxyReply> {
    try {
      return await this.#dispatch(request);
    } catch (err) {
      const status = errorStatus(err);
      return { status, body: { error: errorText(err), status } };
    }
  }

  #dispatch({
    method,
    segments,
    body,
  }: ToxiproxyRequest): Promise<ToxiproxyReply> | ToxiproxyReply {
    const get = method === 'GET' || method === 'HEAD';
    const [root, name, sub, toxic, extra] = segments;
    if (root === 'version' && segments.length === 1) {
      if (!get) throw notAllowed();
      return {
        status: 200,
        text: `{"version": "${VERSION}"}\n`,
        contentType: 'application/json;charset=utf-8',
      };
    }
    const host = this.#host;
    if (host === undefined) {
      throw new ApiError(
        501,
        'the Toxiproxy API needs a proxy that can create listeners (this one cannot)',
      );
    }
    if (root === 'reset' && segments.length === 1) return only(method, 'POST', () => reset(host));
    if (root === 'populate' && segments.length === 1)
      return only(method, 'POST', async () => populate(host, await body()));
    if (root !== 'proxies' || extra !== undefined) throw new ApiError(404, 'not found');
    if (name === undefined) {
      if (get) return proxyIndex(host).then((index) => ({ status: 200, body: index }));
      return only(method, 'POST', async () => createProxy(host, await body()));
    }
    if (sub === undefined) {
      if (get)
        return findProxy(host, name).then((info) => ({ status: 200, body: proxyJson(info) }));
      if (method === 'POST' || method === 'PATCH') return updateProxy(host, name, body);
      return only(method, 'DELETE', async () => {
        if (!(await host.deleteListener(name))) throw proxyNotFound();
        return { status: 204 };
      });
    }
    if (sub !== 'toxics') throw new ApiError(404, 'not found');
    return toxicsRoute(host, name, toxic, method, body);
  }
}

/** toxicsRoute answers `/proxies/{name}/toxics[/{toxic}]`: reads the listener's info, changes through the host. */
async function toxicsRoute(
  host: ToxiproxyHost,
  proxy: string,
  name: string | undefined,
  method: string,
  body: () => Promise<string>,
): Promise<ToxiproxyReply> {
  const toxics = (await findProxy(host, proxy)).toxics ?? [];
  const change = async (toxicChange: ToxicChange): Promise<void> => {
    if ((await host.changeToxics(proxy, toxicChange)) === 'no_listener') throw proxyNotFound();
  };
  if (name === undefined) {
    if (method === 'GET' || method === 'HEAD') return { status: 200, body: toxics.map(toxicJson) };
    return only(method, 'POST', async () => {
      const taken = (n: string) => toxics.some((t) => t.name === n);
      const created = parseToxic(parseJson(await body()), { taken });
      await change({ op: 'add', toxic: created });
      return { status: 200, body: toxicJson(created) };
    });
  }
  const old: Toxic | undefined = toxics.find((t) => t.name === name);
  if (method === 'GET' || method === 'HEAD') {
    if (old === undefined) throw toxicNotFound(name);
    return { status: 200, body: toxicJson(old) };
  }
  if (method === 'POST' || method === 'PATCH') {
    // Toxiproxy looks the toxic up before it reads the body.
    if (old === undefined) throw toxicNotFound(name);
    const updated = updateToxic(old, parseJson(await body()));
    await change({ op: 'update', toxic: updated });
    return { status: 200, body: toxicJson(updated) };
  }
  if (method !== 'DELETE') throw notAllowed();
  await change({ op: 'remove', name });
  return { status: 204 };
}

function only(
  method: string,
  allowed: string,
  run: () => Promise<ToxiproxyReply> | ToxiproxyReply,
): Promise<ToxiproxyReply> | ToxiproxyReply {
  if (method !== allowed) throw notAllowed();
  return run();
}

async function proxyIndex(host: ToxiproxyHost): Promise<Record<string, unknown>> {
  const index: Record<string, unknown> = {};
  for (const info of await proxies(host)) index[info.name] = proxyJson(info);
  return index;
}

/** proxies: the listeners Toxiproxy sees (not those a reload removed that still drain). */
async function proxies(host: ToxiproxyHost): Promise<ListenerInfo[]> {
  return (await host.listenerInfo()).filter((l) => l.state !== 'removing');
}

async function findProxy(host: ToxiproxyHost, name: string): Promise<ListenerInfo> {
  const info = (await proxies(host)).find((l) => l.name === name);
  if (info === undefined) throw proxyNotFound();
  return info;
}

/** proxyJson is a listener as Toxiproxy shows a proxy, keys in its order. */
function proxyJson(info: ListenerInfo): Record<string, unknown> {
  return {
    name: info.name,
    listen: info.address,
    upstream: upstreamOf(info),
    enabled: info.state !== 'disabled',
    toxics: (info.toxics ?? []).map(toxicJson),
  };
}

function upstreamOf(info: ListenerInfo): string {
  return info.targets.map((t) => t.address).join(',');
}

/** ProxyFields is a proxy as a request body gives it; absent fields are undefined. */
interface ProxyFields {
  name: string | undefined;
  listen: string | undefined;
  upstream: string | undefined;
  enabled: boolean | undefined;
}

function proxyFields(value: unknown, where = ''): ProxyFields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badBody(`expected a JSON object (a proxy${where}), got ${jsonKind(value)}`);
  }
  const fields = value as Record<string, unknown>;
  const text = (key: string): string | undefined => {
    const v = fields[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string')
      throw badBody(`${key}${where}: expected a string, got ${jsonKind(v)}`);
    return v;
  };
  const enabled = fields['enabled'];
  if (enabled !== undefined && enabled !== null && typeof enabled !== 'boolean') {
    throw badBody(`enabled${where}: expected true or false, got ${jsonKind(enabled)}`);
  }
  return {
    name: text('name'),
    listen: text('listen'),
    upstream: text('upstream'),
    enabled: enabled ?? undefined,
  };
}

async function createProxy(host: ToxiproxyHost, text: string): Promise<ToxiproxyReply> {
  const input = proxyFields(parseJson(text));
  if (!input.name) throw missingField('name');
  if (!input.upstream) throw missingField('upstream');
  const created = await create(host, input.name, input.listen ?? '', input.upstream, input.enabled);
  if (created === 'exists') throw proxyExists();
  return { status: 201, body: proxyJson(created) };
}

function create(
  host: ToxiproxyHost,
  name: string,
  listen: string,
  upstream: string,
  enabled = true,
): Promise<ListenerInfo | 'exists'> {
  return host
    .createListener({ name, listen: listenOf(listen), targets: upstream.split(',') }, enabled)
    .catch(rethrow);
}

async function updateProxy(
  host: ToxiproxyHost,
  name: string,
  body: () => Promise<string>,
): Promise<ToxiproxyReply> {
  await findProxy(host, name);
  const input = proxyFields(parseJson(await body()));
  const change: ListenerChange = {
    listen: input.listen === undefined ? undefined : listenOf(input.listen),
    targets: input.upstream === undefined ? undefined : input.upstream.split(','),
    enabled: input.enabled,
  };
  const changed = await host.changeListener(name, change).catch(rethrow);
  if (changed === 'no_listener') throw proxyNotFound();
  return { status: 200, body: proxyJson(changed) };
}

/** reset enables every proxy and removes every toxic (`POST /reset`). */
async function reset(host: ToxiproxyHost): Promise<ToxiproxyReply> {
  for (const info of await proxies(host)) {
    if (info.state === 'disabled')
      await host.changeListener(info.name, { enabled: true }).catch(rethrow);
    if (info.toxics !== undefined && info.toxics.length > 0)
      await host.changeToxics(info.name, { op: 'reset' });
  }
  return { status: 204 };
}

/**
 * populate creates the proxies of a JSON array, all checked first: a proxy of that
 * name with the same listen and upstream is kept as it is (toxics too); one that
 * differs is replaced. 201 with `{"proxies": [...]}`; on an error, its status with
 * `{"error", "status", "proxies"}` listing those made before it.
 */
async function populate(host: ToxiproxyHost, text: string): Promise<ToxiproxyReply> {
  const done: ListenerInfo[] = [];
  // Go writes an empty list as null.
  const list = () => (done.length === 0 ? null : done.map(proxyJson));
  try {
    const value = parseJson(text);
    if (!Array.isArray(value))
      throw badBody(`expected a JSON array of proxies, got ${jsonKind(value)}`);
    const inputs = value.map((v, i) => proxyFields(v, ` at proxy ${i + 1}`));
    for (const [i, input] of inputs.entries()) {
      if (!input.name) throw missingField(`name at proxy ${i + 1}`);
      if (!input.upstream) throw missingField(`upstream at proxy ${i + 1}`);
    }
    for (const input of inputs) done.push(await populateOne(host, input));
    return { status: 201, body: { proxies: list() } };
  } catch (err) {
    const status = errorStatus(err);
    return { status, body: { error: errorText(err), status, proxies: list() } };
  }
}

async function populateOne(host: ToxiproxyHost, input: ProxyFields): Promise<ListenerInfo> {
  const name = input.name ?? '';
  const upstream = input.upstream ?? '';
  const listen = input.listen ?? '';
  const existing = (await proxies(host)).find((l) => l.name === name);
  if (existing !== undefined) {
    if (upstreamOf(existing) === upstream && sameAddress(listen, existing)) return existing;
    await host.deleteListener(name);
  }
  const created = await create(host, name, listen, upstream, input.enabled);
  // Only a concurrent create of the same name can get here.
  if (created === 'exists') throw proxyExists();
  return created;
}

/** sameAddress: `listen` as given names the address the listener shows (Toxiproxy compares resolved addresses). */
function sameAddress(listen: string, info: ListenerInfo): boolean {
  const resolved = listen.startsWith(':')
    ? `[::]${listen}`
    : listen.replace(/^localhost:/, '127.0.0.1:');
  return resolved === info.address || listen === info.listen;
}

/** listenOf reads Toxiproxy's listen syntax: `""` is any free port on all interfaces, `:PORT` all interfaces. */
function listenOf(listen: string): string {
  if (listen === '') return '0';
  return listen.startsWith(':') ? listen.slice(1) : listen;
}

function parseJson(text: string): unknown {
  // Go's decoder says EOF for an empty body.
  if (text.trim() === '') throw badBody('EOF');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badBody(err instanceof Error ? err.message : String(err));
  }
}

function badBody(why: string): ApiError {
  return new ApiError(400, `bad request body: ${why}`);
}

/** rethrow maps the proxy's errors: bad options are 400 (bad request body), anything else keeps its own status. */
function rethrow(err: unknown): never {
  if (errorCode(err) === 'PROXY_ERR_INVALID_CONFIG') {
    const message = err instanceof Error ? err.message : String(err);
    throw badBody(message.replace(/^targets(\[\d+\])?/, 'upstream'));
  }
  throw err;
}

/** errorText is the `error` of Toxiproxy's error body: a toxic's in Toxiproxy's words. */
function errorText(err: unknown): string {
  if (err instanceof ToxicError) return apiText(err);
  return err instanceof Error ? err.message : String(err);
}

/** jsonKind names the JSON type of a value, for messages. */
function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function errorStatus(err: unknown): number {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : 500;
}
