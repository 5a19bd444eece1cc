/**
 * The TLS facts of a connection, for the access record, `/api/connections` and the
 * trace: the protocol version and cipher a handshake settled, and the subject of the
 * client's certificate under mutual TLS. Read once, when the handshake completes
 * (termination.ts for the client; for an originated upstream, opening.ts through the
 * listener's `upstreamFacts` hook, listener-tls.ts); a plain connection has none and
 * pays nothing.
 */
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { TlsFacts } from '../handshake.js';

/**
 * tlsFacts reads the facts of the completed handshake of `secure`; `peerSubject`: also
 * the subject of the peer's certificate (a verified client under mutual TLS), written
 * on one line as `CN=client one, O=Example`.
 */
export function tlsFacts(secure: TLSSocket, peerSubject: boolean): TlsFacts {
  const version = secure.getProtocol() ?? 'unknown';
  const cipher = secure.getCipher()?.name ?? 'unknown';
  if (!peerSubject) return { version, cipher };
  const subject = secure.getPeerX509Certificate()?.subject;
  return subject === undefined
    ? { version, cipher }
    : { version, cipher, clientSubject: subject.split('\n').join(', ') };
}

/** upstreamTlsFacts: the facts of an upstream wrapper that is a TLS socket (origination), else undefined. */
export function upstreamTlsFacts(wrapper: Duplex): TlsFacts | undefined {
  return wrapper instanceof TLSSocket ? tlsFacts(wrapper, false) : undefined;
}
