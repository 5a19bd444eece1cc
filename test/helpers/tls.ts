/**
 * TLS test helpers: ClientHellos built byte by byte (for the parser's properties),
 * self-signed certificates made with `openssl req` in a temp directory removed after
 * the test, and the first bytes real TLS clients send, captured by a raw TCP server.
 * Every child process is ended by its PID in `t.after` if it is still running.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import type { Target } from '../../src/config/address.js';
import { parseClientHello } from '../../src/tls/client-hello.js';
import { withTimeout } from './cli.js';
import { deadline } from './time.js';

const execFileAsync = promisify(execFile);

/** HelloSpec says what a built ClientHello holds and how it is cut into records. */
export interface HelloSpec {
  /** serverName: written as given (any case); null or absent: no server_name extension. */
  serverName?: string | null;
  alpn?: readonly string[];
  /** other extensions (types other than 0 and 16), in the order given. */
  extensions?: readonly { type: number; data: Uint8Array }[];
  /** where among the extensions server_name and ALPN go (index into the list; default first). */
  serverNameAt?: number;
  alpnAt?: number;
  sessionId?: Uint8Array;
  cipherSuites?: number;
  /** fragments: the sizes of the records' fragments, cycled (default: one record). */
  fragments?: readonly number[];
  /** noExtensions leaves out the extensions block entirely (a TLS 1.0-1.2 hello may). */
  noExtensions?: boolean;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function vec16(body: Uint8Array): Buffer {
  return Buffer.concat([u16(body.length), body]);
}

function extension(type: number, data: Uint8Array): Buffer {
  return Buffer.concat([u16(type), vec16(data)]);
}

/** serverNameExtension is a server_name extension body (RFC 6066) with one host_name. */
export function serverNameData(name: string): Buffer {
  const host = Buffer.from(name, 'latin1');
  return vec16(Buffer.concat([Buffer.from([0]), vec16(host)]));
}

/** alpnData is an ALPN extension body (RFC 7301). */
export function alpnData(protocols: readonly string[]): Buffer {
  return vec16(
    Buffer.concat(
      protocols.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])),
    ),
  );
}

/** helloBody builds a ClientHello's body (after the 4-byte handshake header). */
export function helloBody(spec: HelloSpec): Buffer {
  const session = spec.sessionId ?? new Uint8Array(32).fill(7);
  const suites = Buffer.alloc(2 * (spec.cipherSuites ?? 3), 0x13);
  const fixed = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 0xab),
    Buffer.from([session.length]),
    session,
    vec16(suites),
    Buffer.from([1, 0]),
  ]);
  if (spec.noExtensions) return fixed;
  const list: Buffer[] = (spec.extensions ?? []).map((e) => extension(e.type, e.data));
  if (spec.alpn !== undefined) {
    list.splice(Math.min(spec.alpnAt ?? 0, list.length), 0, extension(16, alpnData(spec.alpn)));
  }
  if (spec.serverName !== undefined && spec.serverName !== null) {
    const at = Math.min(spec.serverNameAt ?? 0, list.length);
    list.splice(at, 0, extension(0, serverNameData(spec.serverName)));
  }
  return Buffer.concat([fixed, vec16(Buffer.concat(list))]);
}

/** handshakeMessage wraps a body as a handshake message of `type` (1: ClientHello). */
export function handshakeMessage(body: Uint8Array, type = 1): Buffer {
  const header = Buffer.from([
    type,
    (body.length >> 16) & 0xff,
    (body.length >> 8) & 0xff,
    body.length & 0xff,
  ]);
  return Buffer.concat([header, body]);
}

/** records cuts a handshake message into handshake records of the given fragment sizes (cycled). */
export function records(message: Uint8Array, fragments: readonly number[] = [16384]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < message.length; i++) {
    const size = Math.min(fragments[i % fragments.length] ?? 16384, message.length - at);
    out.push(Buffer.from([22, 3, 1]), u16(size), Buffer.from(message.subarray(at, at + size)));
    at += size;
  }
  return Buffer.concat(out);
}

/** buildClientHello is the bytes a client would send: records holding the ClientHello. */
export function buildClientHello(spec: HelloSpec): Buffer {
  return records(handshakeMessage(helloBody(spec)), spec.fragments);
}

/** CertificateFiles: a self-signed certificate and its key, as PEM text and as files. */
export interface CertificateFiles {
  /** cn is the subject's common name. */
  cn: string;
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

/** tempDir makes a directory removed after the test. */
export async function tempDir(t: TestContext, prefix = 'l4proxy-tls-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * makeCertificate runs `openssl req -x509` for a P-256 key and a certificate for
 * `cn`, with `dnsNames` as its subjectAltNames (none: no SAN extension, CN only).
 */
export async function makeCertificate(
  dir: string,
  file: string,
  cn: string,
  dnsNames: readonly string[] = [cn],
): Promise<CertificateFiles> {
  const certPath = join(dir, `${file}.crt`);
  const keyPath = join(dir, `${file}.key`);
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  args.push('-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${cn}`);
  if (dnsNames.length > 0)
    args.push('-addext', `subjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(',')}`);
  await execFileAsync('openssl', args, { timeout: deadline(10_000) });
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  return { cn, cert, key, certPath, keyPath };
}

/** signedClientCertificate makes a CA and a client certificate it signed, subject `CN=client one` (mutual TLS). */
export async function signedClientCertificate(
  dir: string,
): Promise<{ ca: CertificateFiles; certPath: string; keyPath: string }> {
  const ca = await makeCertificate(dir, 'client-ca', 'Test Client CA', []);
  const keyPath = join(dir, 'client.key');
  const csrPath = join(dir, 'client.csr');
  const certPath = join(dir, 'client.crt');
  const options = { timeout: deadline(10_000) };
  await execFileAsync(
    'openssl',
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-keyout',
      keyPath,
      '-out',
      csrPath,
      '-subj',
      '/CN=client one',
    ]),
    options,
  );
  await execFileAsync(
    'openssl',
    ['x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath].concat([
      '-CAcreateserial',
      '-out',
      certPath,
      '-days',
      '2',
    ]),
    options,
  );
  return { ca, certPath, keyPath };
}

/**
 * captureClientHello starts a raw TCP server on 127.0.0.1:0, runs `client(port)`,
 * collects the first connection's bytes until parseClientHello decides (or the client
 * closes), then closes that connection. Returns the bytes. `client` may return a child
 * process (ended by its PID after the test) or a socket (destroyed).
 */
export async function captureClientHello(
  t: TestContext,
  client: (port: number) => ChildProcess | Socket,
): Promise<Buffer> {
  let done: (bytes: Buffer) => void = () => {};
  const captured = new Promise<Buffer>((resolve) => {
    done = resolve;
  });
  const server = createServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const bytes = Buffer.concat(chunks);
      if (parseClientHello(bytes).state !== 'incomplete') {
        done(bytes);
        socket.destroy();
      }
    });
    socket.on('end', () => {
      done(Buffer.concat(chunks));
      socket.destroy();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  const started = client(address.port);
  t.after(() => {
    if ('pid' in started && started.pid !== undefined) {
      if (started.exitCode === null && started.signalCode === null) started.kill('SIGKILL');
    } else if ('destroy' in started) started.destroy();
  });
  if ('stderr' in started && started.stderr !== null) started.stderr.resume();
  if ('stdout' in started && started.stdout !== null) started.stdout.resume();
  return withTimeout(captured, 10_000, 'a ClientHello from the client');
}

/** spawnTool starts a command-line client with its output piped (and ignored unless read). */
export function spawnTool(command: string, args: readonly string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.on('error', () => {});
  return child;
}

/** TlsUpstream is a TLS server started by startTlsUpstream. */
export interface TlsUpstream {
  name: string;
  target: Target;
  cert: CertificateFiles;
  /** tcpConnections counts TCP connections accepted, TLS or not. */
  tcpConnections: number;
}

/**
 * startTlsUpstream starts a TLS server that greets each client with
 * `server <name> sni=<servername>\n`, then echoes what it gets, half-close included.
 */
export async function startTlsUpstream(t: TestContext, name: string, cert: CertificateFiles) {
  const server = createTlsServer(
    { cert: cert.cert, key: cert.key, allowHalfOpen: true },
    (socket) => {
      socket.on('error', () => {});
      socket.write(`server ${name} sni=${socket.servername}\n`);
      socket.pipe(socket);
    },
  );
  const upstream: TlsUpstream = {
    name,
    cert,
    tcpConnections: 0,
    target: { address: '', host: '127.0.0.1', port: 0, weight: 1 },
  };
  server.on('connection', () => {
    upstream.tcpConnections += 1;
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  upstream.target = { address: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1 };
  return upstream;
}

/** readLine reads the first line a TLS socket receives. */
export async function readLine(socket: TLSSocket): Promise<string> {
  let text = '';
  while (!text.includes('\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    text += chunk.toString('latin1');
  }
  return text.slice(0, text.indexOf('\n'));
}
