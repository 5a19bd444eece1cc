/**
 * TLS termination: the Handshake of a listener with certificates (`--tls-cert` and
 * `--tls-key`, or `tls: { certs }`). At accept it stands a `tls.TLSSocket` on the
 * client's socket (which takes the socket's native handle over) and allows the client
 * once the TLS handshake has completed, handing the TLS socket over as the client's
 * socket: the context then relays plaintext. No upstream is dialled before that.
 *
 * A failed handshake (not TLS at all, no shared cipher, no client certificate or one
 * no CA of `--tls-client-ca` signed) refuses the client with `tls_handshake_failed`;
 * Node's error code is the access record's `error`. The deadline is the handshake's
 * `timeoutMs` (the listener's connect timeout, see listener-tls.ts).
 *
 * The certificate is chosen by the client's SNI name (CertificateChooser, SNICallback);
 * one SecureContext per certificate is made when the hooks are built (at start and
 * on each reload), so no handshake pays for one. Every context has the process's
 * session ticket keys (ticket-keys.ts), so a session resumes across reloads and workers.
 *
 * The allow carries the handshake's facts (tls/facts.ts: version, cipher, the client
 * certificate's subject under mutual TLS) and the client's SNI name, for the access record.
 */
import {
  createSecureContext,
  type SecureContext,
  type SecureContextOptions,
  TLSSocket,
} from 'node:tls';
import { errorCode } from '../errors.js';
import {
  EARLY_BYTES_LIMIT,
  type Handshake,
  type HandshakeAllow,
  type HandshakeClient,
  type HandshakeRefuse,
} from '../handshake.js';
import { type CertificateChooser, type CertificatePair, sniCallback } from './certificates.js';
import { tlsFacts } from './facts.js';
import { ticketKeys } from './ticket-keys.js';

/** TerminationOptions: the certificates, the client CA (mutual TLS) and the deadline. */
export interface TerminationOptions {
  readonly chooser: CertificateChooser<CertificatePair>;
  /** clientCa: PEM CAs that must have signed the client's certificate; null: none asked. */
  readonly clientCa: Buffer | null;
  /** timeoutMs: the handshake must complete within this long (0: no deadline). */
  readonly timeoutMs: number;
}

/** terminationHandshake makes the Handshake that terminates TLS with `options`. */
export function terminationHandshake(options: TerminationOptions): Handshake {
  const clientCa = options.clientCa;
  // The process's ticket keys in every context: sessions resume across reloads and workers.
  const shared: SecureContextOptions = {
    ticketKeys: ticketKeys(),
    ...(clientCa === null ? {} : { ca: clientCa }),
  };
  const first = options.chooser.defaultCertificate.pair;
  const secureContext: SecureContext = createSecureContext({
    ...shared,
    cert: first.cert,
    key: first.key,
  });
  // With one certificate there is nothing to choose: no callback per handshake.
  const SNICallback =
    options.chooser.certificates.length > 1 ? sniCallback(options.chooser, shared) : undefined;
  const tlsOptions = {
    isServer: true,
    secureContext,
    ...(SNICallback === undefined ? {} : { SNICallback }),
    requestCert: clientCa !== null,
    rejectUnauthorized: clientCa !== null,
  };
  return Object.freeze({
    name: 'tls',
    timeoutMs: options.timeoutMs,
    timeoutCause: 'tls_handshake_failed',
    maxBytes: EARLY_BYTES_LIMIT,
    step: (bytes: Buffer, client: HandshakeClient) =>
      terminate(bytes, client, tlsOptions, clientCa !== null),
  } satisfies Handshake);
}

function terminate(
  bytes: Buffer,
  client: HandshakeClient,
  tlsOptions: ConstructorParameters<typeof TLSSocket>[1],
  verifyClient: boolean,
): Promise<HandshakeAllow | HandshakeRefuse> {
  // Bytes read before (the PROXY header's handshake ran first) are the TLS socket's to
  // read. The socket flows (the context reads it from accept on): paused first, or the
  // bytes put back would be emitted as 'data' to nobody before the TLS socket reads them.
  if (bytes.length > 0) {
    client.socket.pause();
    client.socket.unshift(bytes);
  }
  const secure = new TLSSocket(client.socket, tlsOptions);
  return new Promise((resolve) => {
    const refuse = (reason: string, code: string): void => {
      secure.destroy();
      resolve({ allow: false, cause: 'tls_handshake_failed', reason, code });
    };
    secure.once('secure', () => {
      const problem = verifyClient ? clientCertificateProblem(secure) : null;
      if (problem !== null) {
        refuse(`client certificate not accepted: ${problem}`, problem);
        return;
      }
      const tls = tlsFacts(secure, verifyClient);
      const servername = secure.servername;
      const sni = typeof servername === 'string' && servername !== '' ? { sni: servername } : {};
      resolve({ allow: true, consumed: bytes.length, socket: secure, tls, ...sni });
    });
    secure.once('error', (err: Error) => refuse(firstLine(err.message), errorCode(err)));
  });
}

/** NativeTls: the one internal of a TLSSocket read here (see clientCertificateProblem). */
interface NativeTls {
  readonly _handle?: { verifyError?: () => (Error & { code?: string }) | null } | null;
}

/**
 * clientCertificateProblem: why the client's certificate was not verified, or null.
 * With `requestCert` and `rejectUnauthorized`, OpenSSL refuses a client without a
 * certificate during the handshake, but a certificate no CA signed is only recorded:
 * tls.Server checks it when the handshake is done (Node's `onServerSocketSecure`, with
 * `_handle.verifyError()`), and a bare TLSSocket, as here, does not. So this does the
 * same check; it fails closed if that internal is ever missing.
 */
function clientCertificateProblem(secure: TLSSocket): string | null {
  const handle = (secure as unknown as NativeTls)._handle;
  if (typeof handle?.verifyError !== 'function') return 'CLIENT_CERT_UNVERIFIABLE';
  const error = handle.verifyError();
  if (error === null || error === undefined) return null;
  return error.code ?? firstLine(error.message);
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
