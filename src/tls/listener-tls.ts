/**
 * A listener's TLS settings turned into its ConnectionHooks: the files named by
 * `--tls-cert`/`--tls-key`, `tls.certs`, `--tls-client-ca` and `--target-ca` are read
 * and checked here, when the configuration is resolved (at start, and on every reload,
 * so renewed certificates are picked up). A file that cannot be read or is not what it
 * should be fails the whole resolve with one line naming the option and the file, so a
 * reload with a broken certificate changes nothing (all or nothing).
 *
 * Termination's deadline is the listener's connect timeout (default 10s), or
 * DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS when that is 0.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TlsFiles } from '../config/option-kinds.js';
import { ProxyError } from '../errors.js';
import type { ConnectionHooks } from '../handshake.js';
import { CertificateChooser, type CertificatePair } from './certificates.js';
import { upstreamTlsFacts } from './facts.js';
import { originationWrapper } from './origination.js';
import { terminationHandshake } from './termination.js';

/** DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS: the client's TLS handshake deadline when the connect timeout is 0. */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** TlsSettings are the listener settings this module reads (config/options.ts). */
export interface TlsSettings {
  readonly tlsCert: string | null;
  readonly tlsKey: string | null;
  readonly tls: TlsFiles | null;
  readonly tlsClientCa: string | null;
  readonly targetTls: boolean;
  readonly targetCa: string | null;
  readonly targetServername: string | null;
  readonly targetInsecure: boolean;
  readonly connectTimeoutMs: number;
}

function invalid(where: string, what: string): ProxyError {
  return new ProxyError('PROXY_ERR_INVALID_CONFIG', `${where}: ${what}`);
}

/** readPem reads a file for the option at `where`; a one-line error names both. */
function readPem(file: string, where: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw invalid(where, `cannot read ${file}: ${why}`);
  }
}

/** readCa reads a PEM file of CA certificates and checks that it holds one at least. */
function readCa(file: string, where: string): Buffer {
  const pem = readPem(file, where);
  try {
    new X509Certificate(pem);
  } catch {
    throw invalid(where, `${file} holds no PEM certificate`);
  }
  return pem;
}

/**
 * tlsHooks reads and checks the files of `settings` and returns the hooks that
 * terminate and originate TLS, or undefined when the listener has no TLS at all.
 * `where` prefixes every message (`listeners[1].`); throws PROXY_ERR_INVALID_CONFIG.
 */
export function tlsHooks(settings: TlsSettings, where: string): ConnectionHooks | undefined {
  const handshake = termination(settings, where);
  const wrapUpstream = origination(settings, where);
  if (handshake === undefined && wrapUpstream === undefined) return undefined;
  return Object.freeze({
    ...(handshake === undefined ? {} : { handshake }),
    ...(wrapUpstream === undefined ? {} : { wrapUpstream, upstreamFacts: upstreamTlsFacts }),
  });
}

function termination(settings: TlsSettings, where: string): ConnectionHooks['handshake'] {
  const { tlsCert, tlsKey, tls, tlsClientCa } = settings;
  if ((tlsCert === null) !== (tlsKey === null)) {
    throw tlsCert === null
      ? invalid(`${where}tlsKey`, 'needs tlsCert (--tls-cert), the certificate of the key')
      : invalid(`${where}tlsCert`, 'needs tlsKey (--tls-key), the private key of the certificate');
  }
  const pairs: CertificatePair[] = [];
  if (tlsCert !== null && tlsKey !== null) pairs.push(readPair(tlsCert, tlsKey, `${where}tls`));
  for (const [i, pair] of (tls?.certs ?? []).entries())
    pairs.push(readPair(pair.cert, pair.key, `${where}tls.certs[${i}]`));
  if (pairs.length === 0) {
    if (tlsClientCa !== null)
      throw invalid(
        `${where}tlsClientCa`,
        'needs a certificate to terminate TLS with (tlsCert and tlsKey, or tls.certs)',
      );
    return undefined;
  }
  const chooser = CertificateChooser.load(pairs);
  if (typeof chooser === 'string') throw new ProxyError('PROXY_ERR_INVALID_CONFIG', chooser);
  const clientCa = tlsClientCa === null ? null : readCa(tlsClientCa, `${where}tlsClientCa`);
  const timeoutMs =
    settings.connectTimeoutMs > 0 ? settings.connectTimeoutMs : DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
  return terminationHandshake({ chooser, clientCa, timeoutMs });
}

// `where` is `tls` for the flags' pair, `tls.certs[1]` for the file's: messages name it
// and the file (`tls.certs[1].cert /etc/x.crt: not a PEM certificate (...)`).
function readPair(certFile: string, keyFile: string, where: string): CertificatePair {
  const certAt = where.endsWith('tls') ? `${where.slice(0, -3)}tlsCert` : `${where}.cert`;
  const keyAt = where.endsWith('tls') ? `${where.slice(0, -3)}tlsKey` : `${where}.key`;
  return {
    cert: readPem(certFile, certAt),
    key: readPem(keyFile, keyAt),
    certPath: `${certAt} ${certFile}`,
    keyPath: `${keyAt} ${keyFile}`,
  };
}

function origination(settings: TlsSettings, where: string): ConnectionHooks['wrapUpstream'] {
  const { targetTls, targetCa, targetServername, targetInsecure } = settings;
  if (!targetTls) {
    const stray: [string, unknown][] = [
      ['targetCa', targetCa],
      ['targetServername', targetServername],
      ['targetInsecure', targetInsecure || null],
    ];
    const given = stray.find(([, value]) => value !== null);
    if (given !== undefined) throw invalid(`${where}${given[0]}`, 'needs targetTls (--target-tls)');
    return undefined;
  }
  const ca = targetCa === null ? null : readCa(targetCa, `${where}targetCa`);
  return originationWrapper({ ca, servername: targetServername, insecure: targetInsecure });
}
