/**
 * Socket addresses as users write them: `HOST:PORT`, `[IPv6]:PORT`, `unix:/path/to.sock`
 * (a Unix domain socket), or (for a listen address) `PORT` alone, meaning every interface.
 */

/**
 * Address is a parsed address: a TCP `HOST:PORT` (`host` is undefined for a bare
 * `PORT`, all interfaces) or a Unix domain socket `path`.
 */
export type Address =
  | { readonly host: string | undefined; readonly port: number; readonly path?: undefined }
  | { readonly path: string; readonly host?: undefined; readonly port?: undefined };

/**
 * Target is one upstream (of a listener's `targets`), resolved from `HOST:PORT` (then `path` is undefined) or
 * `unix:/path` (then `host` and `port` are undefined).
 */
export type Target = {
  /** address is the target as logs and metrics print it: `host:port`, `[::1]:80`, `unix:/path`. */
  readonly address: string;
  /** weight is the target's relative share of new connections (default 1). */
  readonly weight: number;
  /** backup: used only while no other (non-backup) target is up; absent means false. */
  readonly backup?: boolean;
} & (
  | { readonly host: string; readonly port: number; readonly path?: undefined }
  | { readonly path: string; readonly host?: undefined; readonly port?: undefined }
);

/**
 * TargetOption is a target as written: `'HOST:PORT'`, or `{ address: 'HOST:PORT', weight,
 * backup }` (`backup: true`: used only while no other target is up).
 */
export type TargetOption =
  | string
  | { readonly address: string; readonly weight?: number; readonly backup?: boolean };

/**
 * targetOf makes the Target of a parsed address (parseAddress without allowBarePort);
 * `flags` is its weight and, for a backup target only, `backup: true`.
 */
export function targetOf(
  parsed: Address,
  flags: { readonly weight: number; readonly backup?: true },
): Target {
  const address = formatParsed(parsed);
  if (parsed.path !== undefined) return Object.freeze({ path: parsed.path, address, ...flags });
  // parseAddress without allowBarePort always yields a host for TCP.
  return Object.freeze({ host: parsed.host ?? '', port: parsed.port, address, ...flags });
}

/** UNIX_PREFIX marks a Unix domain socket address: `unix:/run/app.sock`. */
const UNIX_PREFIX = 'unix:';

/** AddressError explains why a string is not an address; the caller adds where it came from. */
export class AddressError extends Error {}

const HOSTNAME =
  /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

/**
 * parseAddress reads `HOST:PORT`, `[IPv6]:PORT` or, with `allowBarePort`, `PORT`.
 * Port 0 (any free port) is accepted only with `allowPortZero` (listen addresses).
 */
export function parseAddress(
  text: string,
  { allowBarePort = false, allowPortZero = false } = {},
): Address {
  let host: string | undefined;
  let portText: string;
  if (text.startsWith(UNIX_PREFIX)) {
    const path = text.slice(UNIX_PREFIX.length);
    if (path === '' || path.includes('\0')) {
      throw new AddressError(`expected unix:/path/to.sock, got ${JSON.stringify(text)}`);
    }
    return { path };
  }
  if (/^\d+$/.test(text)) {
    if (!allowBarePort) throw new AddressError(`expected HOST:PORT, got ${JSON.stringify(text)}`);
    host = undefined;
    portText = text;
  } else if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') {
      throw new AddressError(`expected [IPv6]:PORT, got ${JSON.stringify(text)}`);
    }
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) throw new AddressError(`${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new AddressError(`expected HOST:PORT, got ${JSON.stringify(text)}`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) {
      throw new AddressError(
        `an IPv6 address needs brackets, like [::1]:8080, got ${JSON.stringify(text)}`,
      );
    }
    if (!HOSTNAME.test(host)) {
      throw new AddressError(`${JSON.stringify(host)} is not a host name or IP address`);
    }
  }
  return { host, port: parsePort(portText, allowPortZero) };
}

// The WHATWG URL parser validates IPv6 literals; it keeps this module free of node:net.
function isIPv6(host: string): boolean {
  if (!host.includes(':')) return false;
  try {
    new URL(`http://[${host}]/`);
    return true;
  } catch {
    return false;
  }
}

function parsePort(text: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(text))
    throw new AddressError(`expected a port number, got ${JSON.stringify(text)}`);
  const port = Number(text);
  const min = allowZero ? 0 : 1;
  if (port < min || port > 65535) {
    throw new AddressError(`port must be ${min} to 65535, got ${port}`);
  }
  return port;
}

/** formatParsed writes a parsed Address back as a user would write it. */
export function formatParsed(address: Address): string {
  if (address.path !== undefined) return `${UNIX_PREFIX}${address.path}`;
  return formatAddress(address.host, address.port);
}

/** formatAddress writes an address back: `127.0.0.1:80`, `[::1]:80`, or `80` for all interfaces. */
export function formatAddress(host: string | undefined, port: number): string {
  if (host === undefined) return String(port);
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** isLoopbackHost tells whether a host is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false; // all interfaces
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * checkHostName checks a name for `--admin-host` (and the config file's `admin.hosts`):
 * a DNS name or an IP address, without a port (`proxy.internal`, `10.0.0.5`, `[fd00::5]`).
 * Returns the reason it is not one, or null.
 */
export function checkHostName(name: string): string | null {
  // IPv6 has at least two colons (`::1`); one colon is a port, which is not allowed.
  const ipv6 = /^\[?[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:.]*\]?$/.test(name);
  const dns = /^[A-Za-z0-9_]+(-+[A-Za-z0-9_]+)*(\.[A-Za-z0-9_]+(-+[A-Za-z0-9_]+)*)*\.?$/.test(name);
  if ((ipv6 && name.startsWith('[') === name.endsWith(']')) || (dns && name.length <= 253)) {
    return null;
  }
  return `expected a host name without a port (like proxy.internal or 10.0.0.5), got ${JSON.stringify(name)}`;
}
