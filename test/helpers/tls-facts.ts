/**
 * Test helpers for the TLS facts of a connection (issue #15) as the end-to-end tests
 * read them: the record type with the TLS fields, the admin's `/api/connections`, and a
 * TLS client of the proxy on 127.0.0.1. The caller destroys the client's socket.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type LogRecord, withTimeout } from './cli.js';
import type { CertificateFiles } from './tls.js';

/** TlsRecord: an access record or an entry of `/api/connections`, with the TLS fields. */
export type TlsRecord = LogRecord & {
  sni?: string;
  tls_version?: string;
  tls_cipher?: string;
  tls_client_subject?: string;
  upstream_tls_version?: string;
  upstream_tls_cipher?: string;
};

/**
 * assertOriginatedFacts: `record` (an access record, a snapshot line or a live entry) is of
 * a plain client whose upstream the proxy reached over TLS: TLS 1.2 or 1.3 and a cipher
 * upstream, no client TLS version.
 */
export function assertOriginatedFacts(record: TlsRecord | undefined): void {
  assert.match(String(record?.upstream_tls_version), /^TLSv1\.[23]$/);
  assert.ok((record?.upstream_tls_cipher ?? '') !== '', 'a cipher');
  assert.equal(record?.tls_version, undefined, 'the client spoke plain TCP');
}

/** liveConnections GETs `${admin}/api/connections`, checks the status is 200 and returns the entries. */
export async function liveConnections(admin: string): Promise<TlsRecord[]> {
  const response = await fetch(`${admin}/api/connections`);
  assert.equal(response.status, 200);
  return (await response.json()) as TlsRecord[];
}

/**
 * openTls connects to 127.0.0.1:port with `servername`, trusting `ca`, with a client
 * certificate in `extra`, and resolves after the handshake (5 s at most, scaled).
 */
export async function openTls(
  port: number,
  servername: string,
  ca: CertificateFiles,
  extra: { cert?: string; key?: string } = {},
): Promise<TLSSocket> {
  const socket = tlsConnect({ port, host: '127.0.0.1', servername, ca: ca.cert, ...extra });
  socket.on('error', () => {});
  await withTimeout(once(socket, 'secureConnect'), 5000, 'the TLS handshake');
  return socket;
}
