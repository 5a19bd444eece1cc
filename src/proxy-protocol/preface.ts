/**
 * The preface of `--send-proxy v1|v2`: a PROXY header written to the upstream once it
 * is connected, before any relayed byte (handshake.ts, Preface).
 *
 * The source is the connection's client address, which a handshake may have replaced
 * with a received PROXY header's source (so with both `--accept-proxy` and
 * `--send-proxy` the real client is passed on); the destination is the address the
 * client connected to: the received header's destination, or else the local end of
 * the client's socket. IPv4-mapped addresses (a dual-stack listener's view of an IPv4
 * client) are sent as IPv4; when the two ends still differ in family, the IPv4 one is
 * sent IPv4-mapped, as IPv6. A client with no IP address (a
 * Unix domain socket listener's) gets `PROXY UNKNOWN` (v1) or `LOCAL` with family
 * `UNSPEC` (v2), as the contract says.
 */
import type { Preface, PrefaceConnection } from '../handshake.js';
import { formatIp, type IpAddress, mapIpv4, parseIp, unmapIp } from '../ip-address.js';
import type { ProxyEndpoint, ProxyHeaderFields } from './header.js';
import { encodeV1 } from './v1.js';
import { encodeV2 } from './v2.js';

/** ProxyVersion: the PROXY protocol version a `--send-proxy` writes. */
export type ProxyVersion = 'v1' | 'v2';

const NO_ADDRESSES: ProxyHeaderFields = Object.freeze({
  command: 'LOCAL',
  family: 'unspec',
  transport: 'unspec',
  source: null,
  destination: null,
  tlvs: Object.freeze([]),
});

interface IpEndpoint {
  ip: IpAddress;
  port: number;
}

/**
 * proxyHeaderFields is what a header says about a client at `source` that connected
 * to `destination` (IP addresses, either form): `PROXY` over TCP with both, in one
 * family (see the module comment); `LOCAL`/`unspec` when the source is not an IP
 * address. A missing or non-IP destination is sent as the unspecified address of the
 * source's family (`0.0.0.0`, `::`) with port 0.
 */
export function proxyHeaderFields(
  source: ProxyEndpoint | null,
  destination: ProxyEndpoint | null,
): ProxyHeaderFields {
  const src = ipEndpoint(source);
  if (src === null) return NO_ADDRESSES;
  let dst = ipEndpoint(destination) ?? {
    ip: { family: src.ip.family, bytes: new Uint8Array(src.ip.family === 4 ? 4 : 16) },
    port: 0,
  };
  if (src.ip.family !== dst.ip.family) {
    src.ip = mapIpv4(src.ip);
    dst = { ip: mapIpv4(dst.ip), port: dst.port };
  }
  return {
    command: 'PROXY',
    family: src.ip.family === 4 ? 'IPv4' : 'IPv6',
    transport: 'stream',
    source: { address: formatIp(src.ip), port: src.port },
    destination: { address: formatIp(dst.ip), port: dst.port },
    tlvs: [],
  };
}

function ipEndpoint(endpoint: ProxyEndpoint | null): IpEndpoint | null {
  if (endpoint === null) return null;
  const ip = parseIp(endpoint.address);
  return ip === undefined ? null : { ip: unmapIp(ip), port: endpoint.port };
}

/**
 * splitHostPort reads an address as logs print it (`192.0.2.7:5000`, `[2001:db8::1]:5000`)
 * back into an endpoint; null for anything else (`unix`, `unknown`).
 */
export function splitHostPort(text: string): ProxyEndpoint | null {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return null;
  const portText = text.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port > 65535) return null;
  let host = text.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) return null;
  return parseIp(host) === undefined ? null : { address: host, port };
}

/**
 * connectionHeaderFields: the header fields of a connection: its client address, and
 * where that client connected to (the received PROXY header's destination, if any,
 * else its client socket's local end).
 */
export function connectionHeaderFields(connection: PrefaceConnection): ProxyHeaderFields {
  const received = connection.destinationAddress;
  if (received !== undefined) {
    return proxyHeaderFields(splitHostPort(connection.clientAddress), splitHostPort(received));
  }
  const socket = connection.client.socket;
  const local =
    socket?.localAddress === undefined
      ? null
      : { address: socket.localAddress, port: socket.localPort ?? 0 };
  return proxyHeaderFields(splitHostPort(connection.clientAddress), local);
}

/**
 * proxyHeaderPreface is the Preface of `--send-proxy`: it writes a v1 or v2 PROXY
 * header describing each connection (connectionHeaderFields). One function serves
 * every connection of a listener.
 */
export function proxyHeaderPreface(version: ProxyVersion): Preface {
  return version === 'v1'
    ? (connection) => encodeV1(connectionHeaderFields(connection))
    : (connection) => encodeV2(connectionHeaderFields(connection));
}
