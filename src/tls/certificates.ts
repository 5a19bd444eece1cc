/**
 * Choosing the certificate a terminating listener presents: `tls: { certs: [{cert, key}, ...] }`
 * (docs/cli-contract "TLS"), picked by the client's server name with the same rule as
 * SNI routes (names.ts: exact names before one-label wildcards, any case), the first
 * certificate being the default. A certificate's names are its DNS subjectAltNames,
 * or its subject's common names when it has none (RFC 6125 §6.4.4). Loading checks
 * every certificate and key and that they belong together, so a reload can refuse a
 * broken file before anything changes (all or nothing).
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { checkNamePattern, NameTable } from './names.js';

/** CertificatePair is one certificate (PEM, the chain after it) and its private key (PEM). */
export interface CertificatePair {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** certPath and keyPath name the files in error messages, when the PEMs came from files. */
  readonly certPath?: string;
  readonly keyPath?: string;
}

/** LoadedCertificate is a pair as the chooser holds it: parsed, with the names it answers to. */
export interface LoadedCertificate<C extends CertificatePair> {
  readonly pair: C;
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
  /** names: the host names and wildcards read from the certificate, lower-cased. */
  readonly names: readonly string[];
}

/**
 * subjectAltDnsNames returns the `DNS:` entries of Node's `X509Certificate.subjectAltName`
 * text (`DNS:a.example.com, DNS:*.example.com, IP Address:127.0.0.1`). Node writes a
 * value holding a comma or a quote as a JSON string (`DNS:"a,b"`); such names are
 * read whole (and then fail checkNamePattern).
 */
export function subjectAltDnsNames(text: string | undefined): string[] {
  const names: string[] = [];
  if (text === undefined) return names;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      end += 1;
      value = jsonString(text.slice(colon + 1, end));
    } else {
      const comma = text.indexOf(', ', colon);
      end = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, end);
    }
    if (type === 'DNS') names.push(value);
    i = end + 2; // past ", "
  }
  return names;
}

function jsonString(quoted: string): string {
  try {
    const value: unknown = JSON.parse(quoted);
    return typeof value === 'string' ? value : quoted;
  } catch {
    return quoted;
  }
}

/** certificateNames: a certificate's DNS subjectAltNames, else its subject's CNs; lower-cased. */
export function certificateNames(certificate: X509Certificate): string[] {
  const dns = subjectAltDnsNames(certificate.subjectAltName);
  const names =
    dns.length > 0
      ? dns
      : certificate.subject
          .split('\n')
          .filter((line) => line.startsWith('CN='))
          .map((line) => (line.startsWith('CN="') ? jsonString(line.slice(3)) : line.slice(3)));
  return names.map((name) => name.toLowerCase());
}

/**
 * loadCertificate parses one pair; `where` prefixes the message (`tls.certs[1]`).
 * Returns a one-line error (bad PEM, or a key that does not match) instead of throwing.
 */
export function loadCertificate<C extends CertificatePair>(
  pair: C,
  where: string,
): LoadedCertificate<C> | string {
  const certAt = pair.certPath ?? `${where}.cert`;
  const keyAt = pair.keyPath ?? `${where}.key`;
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pair.cert);
  } catch (err) {
    return `${certAt}: not a PEM certificate (${firstLine(err)})`;
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pair.key);
  } catch (err) {
    return `${keyAt}: not a PEM private key (${firstLine(err)})`;
  }
  if (!certificate.checkPrivateKey(privateKey))
    return `${keyAt}: the key does not belong to the certificate ${certAt}`;
  return { pair, certificate, privateKey, names: certificateNames(certificate) };
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

/**
 * CertificateChooser holds a listener's certificates and picks one per server name:
 * the first certificate naming the host exactly, else the first whose wildcard covers
 * it, else the first certificate (the default; also for a client without SNI).
 * Names that are not host names or `*.` wildcards (`a*.example.com`, IP addresses
 * written as DNS names) are not matched. Build it with `CertificateChooser.load`.
 */
export class CertificateChooser<C extends CertificatePair> {
  readonly #table = new NameTable<LoadedCertificate<C>>();
  /** certificates: every pair, loaded, in the order given; the first is the default. */
  readonly certificates: readonly LoadedCertificate<C>[];

  private constructor(certificates: readonly LoadedCertificate<C>[]) {
    this.certificates = certificates;
    for (const loaded of certificates) {
      for (const name of loaded.names) {
        if (checkNamePattern(name) === null) this.#table.add(name, loaded); // first one wins
      }
    }
  }

  /**
   * load parses and checks every pair (`where` prefixes messages: `tls.certs`): a
   * chooser, or the first problem in one line. At least one pair is needed.
   */
  static load<C extends CertificatePair>(
    pairs: readonly C[],
    where = 'tls.certs',
  ): CertificateChooser<C> | string {
    if (pairs.length === 0) return `${where}: expected at least one certificate and key`;
    const loaded: LoadedCertificate<C>[] = [];
    for (const [i, pair] of pairs.entries()) {
      const one = loadCertificate(pair, `${where}[${i}]`);
      if (typeof one === 'string') return one;
      loaded.push(one);
    }
    return new CertificateChooser(loaded);
  }

  /** defaultCertificate is the first pair. */
  get defaultCertificate(): LoadedCertificate<C> {
    return this.certificates[0] as LoadedCertificate<C>;
  }

  /** choose returns the certificate for `serverName` (null or undefined: the client sent none). */
  choose(serverName: string | null | undefined): LoadedCertificate<C> {
    if (serverName === null || serverName === undefined || serverName === '')
      return this.defaultCertificate;
    return this.#table.lookup(serverName) ?? this.defaultCertificate;
  }
}

/** SniCallback is the `SNICallback` option of `tls.createServer`. */
export type SniCallback = (
  serverName: string,
  callback: (err: Error | null, context?: SecureContext) => void,
) => void;

/**
 * sniCallback makes a `tls.createServer` SNICallback that presents the certificate
 * `chooser` picks. One SecureContext per certificate, made now (with `options`
 * added: ciphers, client CA, ...), so no handshake pays for one. The server's own
 * `cert`/`key` options should be the default certificate's, for clients without SNI.
 */
export function sniCallback<C extends CertificatePair>(
  chooser: CertificateChooser<C>,
  options: SecureContextOptions = {},
): SniCallback {
  const contexts = new Map<LoadedCertificate<C>, SecureContext>();
  for (const loaded of chooser.certificates) {
    contexts.set(
      loaded,
      createSecureContext({ ...options, cert: loaded.pair.cert, key: loaded.pair.key }),
    );
  }
  return (serverName, callback) => callback(null, contexts.get(chooser.choose(serverName)));
}
