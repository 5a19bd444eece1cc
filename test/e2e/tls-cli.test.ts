/**
 * TLS termination and origination through the built CLI (dist/cli.js), with real TLS
 * peers on 127.0.0.1: curl and `openssl s_client` as clients, a Node HTTP server and
 * a Node TLS echo server as upstreams. Certificates are made for each test with
 * `openssl req` (test/helpers/tls.ts). Checks the contract's "TLS": the certificate
 * chosen by SNI, mutual TLS, TLS to targets with a CA, a wrong CA and the insecure
 * mode, certificates re-read on SIGHUP (flags and file), and bad files refused at
 * start (exit 2) and on reload (the running config stays). Build first.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { promisify } from 'node:util';
import { type CliChild, type LogRecord, runCli, startCli } from '../helpers/cli.js';
import { deadline } from '../helpers/time.js';
import {
  type CertificateFiles,
  makeCertificate,
  signedClientCertificate,
  tempDir,
} from '../helpers/tls.js';

const execFileAsync = promisify(execFile);

/** startHttp: a tiny HTTP server on 127.0.0.1:0 answering `hello PATH`. */
async function startHttp(t: TestContext): Promise<string> {
  const server = createHttpServer((req, res) => res.end(`hello ${req.url}\n`));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  server.unref();
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return `127.0.0.1:${address.port}`;
}

/** startTlsEcho: a TLS echo server on 127.0.0.1:0 with `certificate`. */
async function startTlsEcho(t: TestContext, certificate: CertificateFiles): Promise<string> {
  const server = createTlsServer({ cert: certificate.cert, key: certificate.key }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  server.unref();
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return `127.0.0.1:${address.port}`;
}

/** curl runs curl against `https://NAME:PORT/PATH` resolved to 127.0.0.1; never throws. */
async function curl(
  port: number,
  name: string,
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const url = `https://${name}:${port}/tls-path`;
  try {
    const { stdout, stderr } = await execFileAsync(
      'curl',
      ['-sS', '--max-time', '10', '--resolve', `${name}:${port}:127.0.0.1`, ...args, url],
      { timeout: deadline(15_000) },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/**
 * servedFingerprint connects with `openssl s_client` (SNI `servername`, or none) and
 * returns the SHA-256 fingerprint of the certificate the proxy presented.
 */
async function servedFingerprint(port: number, servername: string | null): Promise<string> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`];
  args.push(...(servername === null ? ['-noservername'] : ['-servername', servername]));
  const child = execFileAsync('openssl', args, { timeout: deadline(15_000) });
  child.child.stdin?.end();
  const { stdout } = await child;
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)?.[0];
  assert.ok(pem !== undefined, `s_client printed no certificate:\n${stdout}`);
  return new X509Certificate(pem).fingerprint256;
}

function fingerprint(certificate: CertificateFiles): string {
  return new X509Certificate(certificate.cert).fingerprint256;
}

/** closedRecord waits for the `connection closed` record number `skip` (0: the first). */
async function closedRecord(cli: CliChild, skip = 0): Promise<LogRecord> {
  const closed = () => cli.records().filter((r) => r.msg === 'connection closed');
  await cli.waitForRecord(() => closed().length > skip, 10_000, `connection closed #${skip}`);
  return closed()[skip] as LogRecord;
}

/** plainExchange sends `text` over plain TCP to the proxy, half-closes, and returns what came back. */
async function plainExchange(port: number, text: string): Promise<string> {
  const socket = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = once(socket, 'close');
  socket.end(text);
  await closed;
  return Buffer.concat(chunks).toString();
}

test('curl through a terminating listener reaches a plain HTTP upstream; plain TCP is refused with tls_handshake_failed', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const http = await startHttp(t);
  const cli = await startCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    http,
    '--tls-cert',
    a.certPath,
    '--tls-key',
    a.keyPath,
    '--log-format',
    'json',
  ]);
  const ok = await curl(cli.port, 'a.example.com', ['--cacert', a.certPath]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'hello /tls-path\n');
  const served = await closedRecord(cli);
  assert.equal(served.upstream, http);
  // Plain text to a TLS listener: refused before any dial.
  await plainExchange(cli.port, 'GET / HTTP/1.0\r\n\r\n');
  const refused = await closedRecord(cli, 1);
  assert.equal(refused.cause, 'tls_handshake_failed');
  assert.equal(refused.upstream, null);
  assert.ok(refused.error !== undefined, 'the TLS error is in the access record');
});

test('a client that does not finish its TLS handshake within the connect timeout is closed with tls_handshake_failed', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const http = await startHttp(t);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', http, '--connect-timeout', '300ms'],
    ...['--tls-cert', a.certPath, '--tls-key', a.keyPath, '--log-format', 'json'],
  ]);
  const socket = netConnect({ port: cli.port, host: '127.0.0.1' });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  const started = Date.now();
  const record = await closedRecord(cli);
  assert.equal(record.cause, 'tls_handshake_failed');
  assert.equal(record.upstream, null);
  assert.ok(Date.now() - started >= 250, 'not before the deadline');
});

test('openssl s_client gets the certificate its SNI name picks among tls.certs; the first is the default', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const b = await makeCertificate(dir, 'b', 'b.example.com', ['*.b.example.com']);
  const http = await startHttp(t);
  const file = join(dir, 'proxy.yaml');
  // File names relative to the config file.
  writeFileSync(
    file,
    [
      'listeners:',
      '  - listen: 127.0.0.1:0',
      `    targets: [${http}]`,
      '    tls:',
      '      certs:',
      '        - { cert: a.crt, key: a.key }',
      '        - { cert: b.crt, key: b.key }',
      '',
    ].join('\n'),
  );
  const cli = await startCli(t, ['--config', file, '--log-format', 'json']);
  assert.equal(await servedFingerprint(cli.port, 'x.b.example.com'), fingerprint(b));
  assert.equal(await servedFingerprint(cli.port, 'a.example.com'), fingerprint(a));
  assert.equal(await servedFingerprint(cli.port, 'y.x.b.example.com'), fingerprint(a));
  assert.equal(await servedFingerprint(cli.port, null), fingerprint(a));
  // l4proxy check shows the files, never the keys' contents.
  const check = await runCli(t, ['check', '--config', file]);
  assert.equal(check.status, 0, check.stderr);
  assert.ok(check.stdout.includes(`tls ${join(dir, 'a.crt')}+${join(dir, 'a.key')}`), check.stdout);
  assert.ok(!check.stdout.includes('PRIVATE KEY'));
});

test('mutual TLS: a client without a certificate is refused, one signed by the client CA is served', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const client = await signedClientCertificate(dir);
  const stranger = await makeCertificate(dir, 'stranger', 'stranger');
  const http = await startHttp(t);
  const cli = await startCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    http,
    '--tls-cert',
    a.certPath,
    '--tls-key',
    a.keyPath,
    '--tls-client-ca',
    client.ca.certPath,
    '--log-format',
    'json',
  ]);
  const none = await curl(cli.port, 'a.example.com', ['--cacert', a.certPath]);
  assert.notEqual(none.code, 0, 'no client certificate: refused');
  const refused = await closedRecord(cli);
  assert.equal(refused.cause, 'tls_handshake_failed');
  assert.equal(refused.upstream, null);
  const other = await curl(cli.port, 'a.example.com', [
    '--cacert',
    a.certPath,
    '--cert',
    stranger.certPath,
    '--key',
    stranger.keyPath,
  ]);
  assert.notEqual(other.code, 0, 'a certificate of another CA: refused');
  assert.equal((await closedRecord(cli, 1)).cause, 'tls_handshake_failed');
  const ok = await curl(cli.port, 'a.example.com', [
    '--cacert',
    a.certPath,
    '--cert',
    client.certPath,
    '--key',
    client.keyPath,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'hello /tls-path\n');
});

test('origination: a plain client reaches a TLS echo server with --target-tls --target-ca; a wrong CA closes with tls_handshake_failed', async (t) => {
  const dir = await tempDir(t);
  const upstreamCert = await makeCertificate(dir, 'up', 'upstream.test', ['upstream.test']);
  const wrong = await makeCertificate(dir, 'wrong', 'wrong.test');
  const echoAddress = await startTlsEcho(t, upstreamCert);
  const base = ['--listen', '127.0.0.1:0', '--target', echoAddress, '--log-format', 'json'];
  const tls = ['--target-tls', '--target-servername', 'upstream.test'];
  const good = await startCli(t, [...base, ...tls, '--target-ca', upstreamCert.certPath]);
  assert.equal(await plainExchange(good.port, 'ping over TLS'), 'ping over TLS');

  const bad = await startCli(t, [...base, ...tls, '--target-ca', wrong.certPath]);
  assert.equal(await plainExchange(bad.port, 'ping'), '');
  const record = await closedRecord(bad);
  assert.equal(record.cause, 'tls_handshake_failed');
  assert.match(String((record as { connect_failures?: string }).connect_failures), /CERT|SIGN/);
  assert.ok(!bad.records().some((r) => r.level === 'warn' && /insecure/.test(r.msg)));

  // A target whose handshake fails is skipped like one that refuses: the next one serves.
  const wrongEcho = await startTlsEcho(t, wrong);
  const failover = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', wrongEcho, '--target', echoAddress],
    ...['--log-format', 'json', ...tls, '--target-ca', upstreamCert.certPath],
  ]);
  assert.equal(await plainExchange(failover.port, 'second target'), 'second target');
  const failedOver = await closedRecord(failover);
  assert.equal(failedOver.upstream, echoAddress);
  assert.match(String((failedOver as { connect_failures?: string }).connect_failures), /CERT|SIGN/);

  const insecure = await startCli(t, [...base, ...tls, '--target-insecure']);
  await insecure.waitForRecord(
    (r) => r.level === 'warn' && r.msg.includes('--target-insecure'),
    5000,
    'the insecure warning',
  );
  assert.equal(await plainExchange(insecure.port, 'ping anyway'), 'ping anyway');
});

test('SIGHUP re-reads the certificate files of the flags: new connections get the new certificate', async (t) => {
  const dir = await tempDir(t);
  const first = await makeCertificate(dir, 'first', 'a.example.com');
  const second = await makeCertificate(dir, 'second', 'a.example.com');
  const served = join(dir, 'served');
  copyFileSync(first.certPath, `${served}.crt`);
  copyFileSync(first.keyPath, `${served}.key`);
  const http = await startHttp(t);
  const cli = await startCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    http,
    '--tls-cert',
    `${served}.crt`,
    '--tls-key',
    `${served}.key`,
    '--log-format',
    'json',
  ]);
  assert.equal(await servedFingerprint(cli.port, 'a.example.com'), fingerprint(first));
  copyFileSync(second.certPath, `${served}.crt`);
  copyFileSync(second.keyPath, `${served}.key`);
  process.kill(cli.child.pid as number, 'SIGHUP');
  await cli.waitForRecord((r) => r.msg === 'config reloaded', 5000, 'the reload');
  assert.equal(await servedFingerprint(cli.port, 'a.example.com'), fingerprint(second));
  // A broken certificate file: the reload is refused, the last good certificate stays.
  writeFileSync(`${served}.crt`, 'not a certificate\n');
  process.kill(cli.child.pid as number, 'SIGHUP');
  const refused = await cli.waitForRecord(
    (r) => r.msg === 'config reload refused',
    5000,
    'the refusal',
  );
  assert.match(String(refused.reason), /tlsCert .*served\.crt: not a PEM certificate/);
  assert.equal(await servedFingerprint(cli.port, 'a.example.com'), fingerprint(second));
});

test('a config reload with a broken certificate is refused with one line naming the file; the running config stays', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const b = await makeCertificate(dir, 'b', 'b.example.com');
  const http = await startHttp(t);
  const file = join(dir, 'proxy.yaml');
  const config = (second: string) =>
    [
      'listeners:',
      '  - name: web',
      '    listen: 127.0.0.1:0',
      `    targets: [${http}]`,
      `    tls: { certs: [{ cert: a.crt, key: a.key }, { cert: ${second}, key: b.key }] }`,
      '',
    ].join('\n');
  writeFileSync(file, config('b.crt'));
  const cli = await startCli(t, ['--config', file, '--log-format', 'json']);
  assert.equal(await servedFingerprint(cli.port, 'b.example.com'), fingerprint(b));
  writeFileSync(file, config('missing.crt'));
  process.kill(cli.child.pid as number, 'SIGHUP');
  const refused = await cli.waitForRecord(
    (r) => r.msg === 'config reload refused',
    5000,
    'the refusal',
  );
  assert.equal(
    refused.reason,
    `tls.certs[1].cert: cannot read ${join(dir, 'missing.crt')}: no such file`,
  );
  assert.equal(await servedFingerprint(cli.port, 'b.example.com'), fingerprint(b));
  assert.equal(await servedFingerprint(cli.port, 'a.example.com'), fingerprint(a));
});

test('a bad certificate file stops the start with exit 2 and one line naming it', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const b = await makeCertificate(dir, 'b', 'b.example.com');
  const base = ['--listen', '127.0.0.1:0', '--target', '127.0.0.1:9'];
  const missing = await runCli(t, [
    ...base,
    '--tls-cert',
    join(dir, 'none.crt'),
    '--tls-key',
    a.keyPath,
  ]);
  assert.equal(missing.status, 2);
  assert.equal(
    missing.stderr,
    `l4proxy: tlsCert: cannot read ${join(dir, 'none.crt')}: no such file\n`,
  );
  const mismatched = await runCli(t, [...base, '--tls-cert', a.certPath, '--tls-key', b.keyPath]);
  assert.equal(mismatched.status, 2);
  assert.match(
    mismatched.stderr,
    /^l4proxy: tlsKey .*b\.key: the key does not belong to the certificate/,
  );
  assert.equal(mismatched.stderr.split('\n').length, 2, 'one line');
  const keyless = await runCli(t, [...base, '--tls-cert', a.certPath]);
  assert.equal(keyless.status, 2);
  assert.match(keyless.stderr, /tlsCert: needs tlsKey/);
  // In a file, the message names the file and the field.
  const file = join(dir, 'proxy.yaml');
  writeFileSync(
    file,
    [
      'listeners:',
      '  - { listen: 127.0.0.1:1, targets: ["127.0.0.1:9"] }',
      '  - listen: 127.0.0.1:2',
      '    targets: ["127.0.0.1:9"]',
      '    tls: { certs: [{ cert: a.crt, key: a.key }, { cert: gone.crt, key: b.key }] }',
      '',
    ].join('\n'),
  );
  for (const args of [
    ['--config', file],
    ['check', '--config', file],
  ]) {
    const run = await runCli(t, args);
    assert.equal(run.status, 2);
    assert.equal(
      run.stderr,
      `l4proxy: ${file}: listeners[1].tls.certs[1].cert: cannot read ${join(dir, 'gone.crt')}: no such file\n`,
    );
  }
});
