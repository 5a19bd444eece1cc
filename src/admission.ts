/**
 * Admission: the handshake of `--accept-proxy` and access control, and the hooks a
 * listener gets from those options and `--send-proxy` (handshake.ts; contract, "Who
 * may connect" and "PROXY protocol").
 *
 * The handshake runs its two parts in order, before any upstream is dialled:
 * 1. with `acceptProxy`, it reads the client's PROXY header (v1 or v2, parse.ts); a
 *    malformed one refuses the client with `bad_proxy_header`, none within the
 *    deadline ends it with `proxy_header_timeout`. The header is consumed; the bytes
 *    after it are relayed. Its source becomes the client's address for everything
 *    after (logs, admin, access control), except for a v2 `LOCAL` header, a v1
 *    `UNKNOWN` one, or a family without IP addresses: those keep the socket's own.
 * 2. with an active AccessControl, it admits or refuses (`denied`, `rate_limited`) the
 *    real client address. An admitted connection counted per address is counted off
 *    when its client socket closes.
 */
import type { Socket } from 'node:net';
import { AccessControl, type AccessOptions } from './access/access-control.js';
import { parseCidr } from './access/cidr.js';
import { formatAddress } from './config/address.js';
import type { ListenerConfig } from './config/config.js';
import type { ConnectionHooks, Handshake, HandshakeClient, HandshakeVerdict } from './handshake.js';
import type { ProxyEndpoint } from './proxy-protocol/header.js';
import { parseProxyHeader } from './proxy-protocol/parse.js';
import { type ProxyVersion, proxyHeaderPreface } from './proxy-protocol/preface.js';
import { V2_MAX_LENGTH } from './proxy-protocol/v2.js';

/** DEFAULT_PROXY_HEADER_TIMEOUT_MS: `--proxy-header-timeout` by default (5s). */
export const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5000;

/** AdmissionOptions are a listener's options for admitting clients; all optional. */
export interface AdmissionOptions {
  /** acceptProxy (`--accept-proxy`): every client starts with a PROXY header (default false). */
  readonly acceptProxy?: boolean;
  /** proxyHeaderTimeoutMs (`--proxy-header-timeout`): the whole header within this long (default 5000; 0: no deadline). */
  readonly proxyHeaderTimeoutMs?: number;
  /** access: the listener's AccessControl, kept across reloads by its owner (default none). */
  readonly access?: AccessControl | null;
  /** sendProxy (`--send-proxy`): write a PROXY header of this version to each upstream (default none). */
  readonly sendProxy?: ProxyVersion | null;
}

/**
 * admissionHandshake is the Handshake of `options`, or undefined when there is nothing
 * to do before dialing (no `acceptProxy` and no access control at all), so a plain
 * listener stays plain. An AccessControl that has no rule now still gets a handshake,
 * so that a reload adding rules (`AccessControl.update`) applies to new clients.
 */
export function admissionHandshake(options: AdmissionOptions): Handshake | undefined {
  const acceptProxy = options.acceptProxy ?? false;
  const access = options.access ?? null;
  if (!acceptProxy && access === null) return undefined;
  const name = acceptProxy ? (access === null ? 'proxy-header' : 'proxy-header+access') : 'access';
  return Object.freeze({
    name,
    timeoutMs: options.proxyHeaderTimeoutMs ?? DEFAULT_PROXY_HEADER_TIMEOUT_MS,
    timeoutCause: acceptProxy ? 'proxy_header_timeout' : 'denied',
    // The longest header there can be; access control alone needs no byte.
    maxBytes: acceptProxy ? V2_MAX_LENGTH : 0,
    step: (bytes: Buffer, client: HandshakeClient) => admit(acceptProxy, access, bytes, client),
  } satisfies Handshake);
}

function admit(
  acceptProxy: boolean,
  access: AccessControl | null,
  bytes: Buffer,
  client: HandshakeClient,
): HandshakeVerdict {
  let consumed = 0;
  let source: ProxyEndpoint | null = null;
  let destination: ProxyEndpoint | null = null;
  if (acceptProxy) {
    const result = parseProxyHeader(bytes);
    if (result.status === 'more') return undefined;
    if (result.status === 'error') {
      return { allow: false, cause: 'bad_proxy_header', reason: result.message };
    }
    consumed = result.length;
    const header = result.header;
    const hasIp = header.family === 'IPv4' || header.family === 'IPv6';
    if (header.command === 'PROXY' && hasIp) {
      source = header.source;
      destination = header.destination;
    }
  }
  if (access?.active) {
    const admission = access.admit(source?.address ?? client.socket.remoteAddress);
    if (!admission.allowed) {
      // The record names the real client that was refused, not the balancer in front.
      const refused = { allow: false, cause: admission.cause, reason: admission.reason } as const;
      return source === null
        ? refused
        : { ...refused, client: formatAddress(source.address, source.port) };
    }
    if (admission.key !== null) releaseOnClose(client.socket, access, admission.key);
  }
  if (source === null) return { allow: true, consumed };
  return {
    allow: true,
    consumed,
    client: formatAddress(source.address, source.port),
    clientIp: source.address,
    ...(destination === null
      ? {}
      : { destination: formatAddress(destination.address, destination.port) }),
  };
}

/** What to count off when an admitted client's socket closes. */
const counted = new WeakMap<Socket, { readonly access: AccessControl; readonly key: string }>();

// The handshake keeps no state of its own per connection (handshake.ts): the count is
// tied to the client socket, whose 'close' comes exactly once, however the connection ends.
function releaseOnClose(socket: Socket, access: AccessControl, key: string): void {
  if (socket.closed) {
    access.release(key);
    return;
  }
  counted.set(socket, { access, key });
  socket.once('close', clientOnCloseRelease);
}

function clientOnCloseRelease(this: Socket): void {
  const entry = counted.get(this);
  if (entry === undefined) return;
  counted.delete(this);
  entry.access.release(entry.key);
}

/**
 * admissionHooks are the ConnectionHooks of `options` (the handshake above and the
 * `--send-proxy` preface), or undefined when there are none. Wiring: a listener's
 * library options carry them as `[kConnectionHooks]: admissionHooks({...})`.
 */
export function admissionHooks(options: AdmissionOptions): ConnectionHooks | undefined {
  const handshake = admissionHandshake(options);
  const preface =
    options.sendProxy === undefined || options.sendProxy === null
      ? undefined
      : proxyHeaderPreface(options.sendProxy);
  if (handshake === undefined && preface === undefined) return undefined;
  return Object.freeze({
    ...(handshake === undefined ? {} : { handshake }),
    ...(preface === undefined ? {} : { preface }),
  });
}

/**
 * accessRules are the AccessControl rules of a listener's settings (`allow`, `deny`,
 * `maxConnectionsPerIp`, `connectionRatePerIp`), or null when it sets none.
 */
export function accessRules(config: ListenerConfig): AccessOptions | null {
  const limited = Number.isFinite(config.maxConnectionsPerIp);
  if (
    config.allow.length === 0 &&
    config.deny.length === 0 &&
    !limited &&
    config.connectionRatePerIp === null
  ) {
    return null;
  }
  return {
    // The texts were checked (option-kinds.ts `cidr`): parsing them again cannot fail.
    allow: config.allow.map(parseCidr),
    deny: config.deny.map(parseCidr),
    maxConnectionsPerIp: limited ? config.maxConnectionsPerIp : 0,
    ...(config.connectionRatePerIp === null
      ? {}
      : { connectionRatePerIp: config.connectionRatePerIp }),
  };
}

/**
 * ListenerAdmission gives one listener's connections the hooks of its settings
 * (`--accept-proxy`, `--proxy-header-timeout`, the access rules, `--send-proxy`). It
 * keeps the listener's one AccessControl for the listener's life: a reload updates its
 * rules (`AccessControl.update`), so the open connections counted per address stay
 * counted. A listener without any of these settings keeps its config as it is: no
 * hooks, no cost.
 */
export class ListenerAdmission {
  #access: AccessControl | null = null;
  #given: ListenerConfig | null = null;
  #config: ListenerConfig | null = null;

  /**
   * configFor is `config` with the admission hooks its settings ask for. Hooks the
   * config already has (TLS, `kConnectionHooks`: handshake.ts) win over these, one by
   * one, except the handshake: a config's own (TLS termination, SNI routing) runs
   * after the admission one (`next`), on the bytes after the PROXY header, and only
   * for a client that access control let in. Asked again with the same config, it
   * answers the same object.
   */
  configFor(config: ListenerConfig): ListenerConfig {
    if (config === this.#given && this.#config !== null) return this.#config;
    const rules = accessRules(config);
    if (rules !== null) {
      if (this.#access === null) this.#access = new AccessControl(rules);
      else this.#access.update(rules);
    } else this.#access?.update({});
    const hooks = admissionHooks({
      acceptProxy: config.acceptProxy,
      proxyHeaderTimeoutMs: config.proxyHeaderTimeoutMs,
      access: rules === null ? null : this.#access,
      sendProxy: config.sendProxy,
    });
    this.#given = config;
    this.#config =
      hooks === undefined
        ? config
        : Object.freeze({ ...config, hooks: combineHooks(hooks, config.hooks) });
    return this.#config;
  }
}

/**
 * combineHooks: the config's own hooks over the admission ones, but both handshakes:
 * the admission one first, then the config's as its `next`.
 */
function combineHooks(
  admission: ConnectionHooks,
  own: ConnectionHooks | undefined,
): ConnectionHooks {
  const first = admission.handshake;
  const then = own?.handshake;
  const handshake =
    first !== undefined && then !== undefined
      ? Object.freeze({ ...first, next: then })
      : (then ?? first);
  return Object.freeze({
    ...admission,
    ...own,
    ...(handshake === undefined ? {} : { handshake }),
  });
}
