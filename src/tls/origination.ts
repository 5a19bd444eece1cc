/**
 * TLS origination (`--target-tls`): the upstream wrapper that stands a TLS client on
 * each connected upstream socket (`tls.connect({ socket })`), verified against
 * `--target-ca` (default: the system's CAs, Node's root store) for the name
 * `--target-servername` (default: the target's host name; an IP address is checked
 * against the certificate's IP addresses and not sent as SNI, which RFC 6066 forbids).
 * `--target-insecure` verifies nothing.
 *
 * A failed handshake fails that connect attempt: the next target is tried, as for a
 * refused connect, and a connection whose last attempt failed so closes with
 * `tls_handshake_failed` (opening.ts); the TLS error's code is the attempt's
 * (`DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_TLS_CERT_ALTNAME_INVALID`, ...).
 */
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ConnectionOptions, connect } from 'node:tls';
import type { Target } from '../config/address.js';
import type { UpstreamWrapper } from '../handshake.js';

/** OriginationOptions: how the targets' certificates are checked. */
export interface OriginationOptions {
  /** ca: PEM CAs to trust instead of the system's; null: the system's. */
  readonly ca: Buffer | null;
  /** servername: the name sent and verified; null: each target's host. */
  readonly servername: string | null;
  /** insecure: verify nothing (warned at start by the listener). */
  readonly insecure: boolean;
}

/** originationWrapper makes the UpstreamWrapper of `options`. */
export function originationWrapper(options: OriginationOptions): UpstreamWrapper {
  const base: ConnectionOptions = {
    rejectUnauthorized: !options.insecure,
    ...(options.ca === null ? {} : { ca: options.ca }),
  };
  return (socket: Socket, target: Target): Promise<Duplex> => {
    const name = options.servername ?? target.host;
    const sni = name !== undefined && isIP(name) === 0 ? { servername: name } : {};
    // `host` is what the certificate is checked against when no server name is sent.
    const secure = connect({ ...base, ...sni, socket, host: name ?? 'localhost' });
    return new Promise((resolve, reject) => {
      secure.once('secureConnect', () => resolve(secure));
      secure.once('error', (err: Error) => {
        secure.destroy();
        reject(err);
      });
    });
  };
}
