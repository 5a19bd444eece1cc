/**
 * What keeps a web page in the operator's browser from driving or reading the admin
 * server (the CLI contract's "Admin server safety"). Pure: headers in, a reason to
 * refuse (or null) out.
 *
 * - DNS rebinding: a page on `evil.example` points its name at 127.0.0.1 and reads
 *   the admin API as "same origin". The browser still sends `Host: evil.example`, so
 *   only the admin's own address, the loopback names and the names the operator
 *   gave (`--admin-host`) are answered. The port is not compared: a rebinding page
 *   needs a name, and a tunnel (`ssh -L 8080:localhost:9090`) changes the port.
 *   An admin listening on all interfaces (0.0.0.0, ::; only with a token) is reached
 *   at any of the machine's addresses, so any IP literal is its own address there;
 *   a rebinding page can never make the browser send an IP literal it does not own.
 * - Cross-site requests: a page may send a "simple" POST (no preflight) anywhere.
 *   Browsers mark it with `Origin` and `Sec-Fetch-Site`; a request that changes
 *   anything (any method but GET and HEAD) is refused unless these name the admin's
 *   own origin. Clients that send neither (curl, Prometheus, Toxiproxy clients) pass.
 * - A Unix-socket admin server: no browser can connect to one, and its clients send
 *   any Host they like (curl sends `localhost`, others the socket's path), so the
 *   Host is not checked there. The Origin rule still applies (to requests forwarded
 *   to it by something that speaks TCP).
 */
import { isIP } from 'node:net';
import type { Address } from '../config/address.js';

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** RequestGuard decides whether the admin server answers a request at all. */
export class RequestGuard {
  /** #names: allowed host names, lower case, IPv6 in brackets; null: any Host (Unix socket). */
  readonly #names: ReadonlySet<string> | null;
  /** #anyIp: the admin listens on all interfaces, so every IP literal is its own address. */
  readonly #anyIp: boolean;

  /** `listen` is the admin's address; `hosts` the extra names (`--admin-host`). */
  constructor(listen: Address, hosts: readonly string[] = []) {
    if (listen.path !== undefined) {
      this.#names = null;
      this.#anyIp = false;
      return;
    }
    const own = listen.host;
    this.#anyIp = own === undefined || own === '0.0.0.0' || own === '::';
    const names = [...LOOPBACK_NAMES, ...hosts];
    if (own !== undefined) names.push(own);
    this.#names = new Set(names.map(normalizeName));
  }

  /** hostRefusal says why a request with this `Host` header is refused, or null to answer it. */
  hostRefusal(host: string | undefined): string | null {
    // HTTP/1.0 without Host: no browser sends that (Node refuses HTTP/1.1 without one).
    if (this.#names === null || host === undefined) return null;
    const name = hostName(host);
    if (name !== null && this.#names.has(name)) return null;
    if (name !== null && this.#anyIp && isIP(name.replace(/^\[|\]$/g, '')) !== 0) return null;
    return `host ${JSON.stringify(host)} is not this admin server's (add it with --admin-host)`;
  }

  /**
   * crossSiteRefusal says why a request that a browser marks as coming from another
   * site is refused (only methods that change something), or null to answer it.
   */
  crossSiteRefusal(
    method: string,
    host: string | undefined,
    origin: string | undefined,
    fetchSite: string | undefined,
  ): string | null {
    if (method === 'GET' || method === 'HEAD') return null;
    // `same-site` is refused too: another port on localhost is the same site.
    if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') {
      return `cross-site request refused (Sec-Fetch-Site: ${fetchSite})`;
    }
    if (origin !== undefined && !isOwnOrigin(origin, host)) {
      return `cross-origin request refused (Origin: ${origin})`;
    }
    return null;
  }
}

/** isOwnOrigin: `origin` is http(s) on the very host and port the request was sent to. */
function isOwnOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const url = new URL(origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
    // Parse the Host the same way, so that default ports and case compare equal.
    return url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false; // "null" (a sandboxed or file: page) or garbage
  }
}

/** hostName is the name part of a Host header (no port), lower case, without a final dot; null if malformed. */
function hostName(host: string): string | null {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::\d*)?$/.exec(host.trim());
  return match?.[1] === undefined ? null : normalizeName(match[1]);
}

function normalizeName(name: string): string {
  const lower = name.toLowerCase().replace(/\.$/, '');
  // An IPv6 address given without brackets (`::1`, from --admin or --admin-host).
  return isIP(lower) === 6 ? `[${lower}]` : lower;
}
