/**
 * The TLS facts of a connection (issue #15) and half-close through TLS, with the
 * built CLI and real TLS peers on 127.0.0.1: the access record, `/api/connections` and
 * the trace carry `tls_version`, `tls_cipher` and `sni` for a terminated client,
 * `tls_client_subject` under mutual TLS, `upstream_tls_version` and
 * `upstream_tls_cipher` for an originated upstream, and a plain listener's records
 * none of them. A TLS client's end() (close_notify, FIN) reaches a plain upstream as a
 * FIN while the upstream can still answer, and the other way round. Build first.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { adminUrl, type RunningCli, startCli, withTimeout } from '../helpers/cli.js';
import { connectClient, echo, startUpstream, waitFor } from '../helpers/net.js';
import {
  makeCertificate,
  signedClientCertificate,
  startTlsUpstream,
  tempDir,
} from '../helpers/tls.js';
import {
  assertOriginatedFacts,
  liveConnections,
  openTls,
  type TlsRecord,
} from '../helpers/tls-facts.js';

const TLS_FIELDS = [
  'tls_version',
  'tls_cipher',
  'tls_client_subject',
  'upstream_tls_version',
  'upstream_tls_cipher',
] as const;

/** startProxy runs the CLI with an admin server; returns it and the admin's URL. */
async function startProxy(t: TestContext, args: readonly string[]) {
  const cli = await startCli(t, [...args, '--admin', '127.0.0.1:0', '--log-format', 'json']);
  return { cli, admin: await adminUrl(cli) };
}

function closedRecords(cli: RunningCli): TlsRecord[] {
  return cli.records().filter((r) => r.msg === 'connection closed');
}

/** exchange writes `line` and waits for it back (an echo upstream). */
async function exchange(socket: Socket, line: string): Promise<void> {
  let got = '';
  const onData = (chunk: Buffer) => {
    got += chunk.toString('latin1');
  };
  socket.on('data', onData);
  socket.write(line);
  await waitFor(() => got.includes(line), 5000, `the echo of ${line}`);
  socket.off('data', onData);
}

test('a terminated connection: tls_version, tls_cipher and sni in /api/connections, the trace and the access record', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const upstream = await startUpstream(t, echo);
  const { cli, admin } = await startProxy(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--log-level', 'trace'],
    ...['--tls-cert', a.certPath, '--tls-key', a.keyPath],
  ]);
  const socket = await openTls(cli.port, 'a.example.com', a);
  t.after(() => socket.destroy());
  await exchange(socket, 'facts please');
  const version = socket.getProtocol();
  const cipher = socket.getCipher().name;
  const [live] = await liveConnections(admin);
  assert.equal(live?.tls_version, version);
  assert.equal(live?.tls_cipher, cipher);
  assert.equal(live?.sni, 'a.example.com');
  assert.equal(live?.upstream_tls_version, undefined);
  socket.end();
  await waitFor(() => closedRecords(cli).length > 0, 5000, 'the access record');
  const record = closedRecords(cli)[0];
  assert.equal(record?.tls_version, version);
  assert.equal(record?.tls_cipher, cipher);
  assert.equal(record?.sni, 'a.example.com');
  assert.equal(record?.tls_client_subject, undefined, 'no client certificate asked');
  assert.equal(record?.upstream_tls_version, undefined);
  const traced = cli.records().find((r) => r.msg.startsWith('handshake tls allowed')) as
    | TlsRecord
    | undefined;
  assert.equal(traced?.tls_version, version, 'the trace carries the facts');
  assert.equal(traced?.tls_cipher, cipher);
});

test('mutual TLS: the access record carries the client certificate subject', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const client = await signedClientCertificate(dir);
  const upstream = await startUpstream(t, echo);
  const { cli } = await startProxy(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address],
    ...['--tls-cert', a.certPath, '--tls-key', a.keyPath, '--tls-client-ca', client.ca.certPath],
  ]);
  const [cert, key] = await Promise.all([
    readFile(client.certPath, 'utf8'),
    readFile(client.keyPath, 'utf8'),
  ]);
  const socket = await openTls(cli.port, 'a.example.com', a, { cert, key });
  const version = socket.getProtocol();
  await exchange(socket, 'who am I');
  socket.end();
  await waitFor(() => closedRecords(cli).length > 0, 5000, 'the access record');
  const record = closedRecords(cli)[0];
  assert.equal(record?.tls_client_subject, 'CN=client one');
  assert.equal(record?.tls_version, version);
});

test('origination: the access record and /api/connections carry upstream_tls_version and upstream_tls_cipher', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCertificate(dir, 'up', 'upstream.test');
  const upstream = await startTlsUpstream(t, 'U', cert);
  const { cli, admin } = await startProxy(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.target.address, '--target-tls'],
    ...['--target-ca', cert.certPath, '--target-servername', 'upstream.test'],
  ]);
  const client = connectClient(cli.port);
  t.after(() => client.socket.destroy());
  await waitFor(() => client.received().includes('server U'), 5000, 'the greeting');
  const [live] = await liveConnections(admin);
  assertOriginatedFacts(live);
  client.socket.end();
  await waitFor(() => closedRecords(cli).length > 0, 5000, 'the access record');
  const record = closedRecords(cli)[0];
  assert.equal(record?.upstream_tls_version, live?.upstream_tls_version);
  assert.equal(record?.upstream_tls_cipher, live?.upstream_tls_cipher);
  assert.equal(record?.tls_version, undefined);
});

test('a plain listener: neither the access record nor /api/connections has a TLS field', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { cli, admin } = await startProxy(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
  ]);
  const client = connectClient(cli.port);
  t.after(() => client.socket.destroy());
  await exchange(client.socket, 'plain');
  const [live] = await liveConnections(admin);
  assert.ok(live !== undefined);
  for (const field of [...TLS_FIELDS, 'sni'] as const) assert.equal(field in live, false, field);
  client.socket.end();
  await waitFor(() => closedRecords(cli).length > 0, 5000, 'the access record');
  const record = closedRecords(cli)[0] as TlsRecord;
  for (const field of [...TLS_FIELDS, 'sni'] as const) assert.equal(field in record, false, field);
});

/** halfCloseSetup: a terminating listener in front of a plain upstream that records each socket. */
async function halfCloseSetup(t: TestContext) {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const upstream = await startUpstream(t);
  const { cli } = await startProxy(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address],
    ...['--tls-cert', a.certPath, '--tls-key', a.keyPath],
  ]);
  // tls.connect passes allowHalfOpen on to its TLSSocket; Node's types leave it out.
  const options: ConnectionOptions & { allowHalfOpen: boolean } = {
    port: cli.port,
    host: '127.0.0.1',
    servername: 'a.example.com',
    ca: a.cert,
    allowHalfOpen: true,
  };
  const socket = tlsConnect(options);
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  await withTimeout(once(socket, 'secureConnect'), 5000, 'the TLS handshake');
  return { cli, upstream, socket };
}

/** collect gathers what a socket reads and notes its end. */
function collect(socket: Socket) {
  const state = { text: '', ended: false };
  socket.on('data', (chunk: Buffer) => {
    state.text += chunk.toString('latin1');
  });
  socket.on('end', () => {
    state.ended = true;
  });
  return state;
}

test('half-close: a TLS client end() reaches the plain upstream as a FIN, and the upstream can still answer', async (t) => {
  const { cli, upstream, socket } = await halfCloseSetup(t);
  const fromUpstream = collect(socket);
  socket.write('request');
  const server = await upstream.accepted();
  const atServer = collect(server);
  await waitFor(() => atServer.text === 'request', 5000, 'the request at the upstream');
  socket.end(); // close_notify, then FIN
  await waitFor(() => atServer.ended, 5000, 'the FIN at the upstream');
  assert.equal(fromUpstream.ended, false, 'the client is still open for reading');
  server.end('answer after FIN');
  await waitFor(() => fromUpstream.ended, 5000, 'the end at the client');
  assert.equal(fromUpstream.text, 'answer after FIN');
  await waitFor(() => closedRecords(cli).length > 0, 5000, 'the access record');
  const record = closedRecords(cli)[0];
  assert.equal(record?.first_close, 'client');
  assert.equal(record?.bytes_to_client, 'answer after FIN'.length);
});

test('half-close mirrored: the upstream FIN reaches the TLS client as an end, and the client can still send', async (t) => {
  const { cli, upstream, socket } = await halfCloseSetup(t);
  const fromUpstream = collect(socket);
  socket.write('hello');
  const server = await upstream.accepted();
  const atServer = collect(server);
  await waitFor(() => atServer.text === 'hello', 5000, 'the first bytes at the upstream');
  server.end('bye');
  await waitFor(() => fromUpstream.ended, 5000, 'the end (close_notify) at the client');
  assert.equal(fromUpstream.text, 'bye');
  socket.end(' and goodbye');
  await waitFor(() => atServer.ended, 5000, 'the FIN at the upstream');
  assert.equal(atServer.text, 'hello and goodbye');
  await waitFor(() => closedRecords(cli).length > 0, 5000, 'the access record');
  assert.equal(closedRecords(cli)[0]?.first_close, 'upstream');
});
