/**
 * The TLS facts of a connection (issue #15) where they travel further than one
 * process's log: the SIGUSR1 snapshot of a single process, and under `--workers 2`
 * the access record each worker writes, `/api/connections` (which the primary gathers
 * over IPC) and every worker's snapshot, for a terminated, an originated and an
 * SNI-routed connection. The built CLI with real TLS clients and
 * upstreams on 127.0.0.1; tls-facts-cli.test.ts covers one process's access record,
 * API and trace. Processes are ended by PID. Build first.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { adminUrl, type CliChild, startCli } from '../helpers/cli.js';
import { startCluster, type WorkerRecord } from '../helpers/cluster.js';
import { connectClient, echo, startUpstream, waitFor } from '../helpers/net.js';
import {
  type CertificateFiles,
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

/** FactsRecord: a log record or API entry with the TLS fields and the cluster's `worker`. */
type FactsRecord = TlsRecord & WorkerRecord;

function records(cli: CliChild): FactsRecord[] {
  return cli.records() as FactsRecord[];
}

/**
 * startWorkers runs `--workers 2` with `args` (which say what to listen on), JSON logs
 * and an admin server, waits until every worker listens, and kills the workers by PID
 * after the test (the helper kills the primary). Returns the CLI, the listening port
 * and the admin URL.
 */
async function startWorkers(t: TestContext, args: readonly string[]) {
  const cli = await startCluster(t, ['--workers', '2', ...args, '--admin', '127.0.0.1:0']);
  return { cli, port: cli.port, admin: await adminUrl(cli) };
}

/** openEchoedTls connects with `servername`, trusting `ca`, and waits until `text` is echoed back. */
async function openEchoedTls(
  t: TestContext,
  port: number,
  ca: CertificateFiles,
  text: string,
  extra: { cert?: string; key?: string } = {},
): Promise<TLSSocket> {
  const socket = await openTls(port, ca.cn, ca, extra);
  t.after(() => socket.destroy());
  let got = '';
  socket.on('data', (chunk: Buffer) => {
    got += chunk.toString('latin1');
  });
  socket.write(text);
  await waitFor(() => got === text, 5000, `the echo of ${text}`);
  return socket;
}

/** Seen: what the client saw of its handshake (read while the socket is open). */
interface Seen {
  version: string | null;
  cipher: string;
}

function seen(socket: TLSSocket): Seen {
  return { version: socket.getProtocol(), cipher: socket.getCipher().name };
}

/** assertClientFacts: `record` carries the facts the client saw, the SNI and (if given) the subject. */
function assertClientFacts(
  record: FactsRecord | undefined,
  client: Seen,
  sni: string,
  what: string,
  subject?: string,
): void {
  assert.ok(record !== undefined, what);
  assert.equal(record.tls_version, client.version, `${what}: tls_version`);
  assert.equal(record.tls_cipher, client.cipher, `${what}: tls_cipher`);
  assert.equal(record.sni, sni, `${what}: sni`);
  assert.equal(record.tls_client_subject, subject, `${what}: tls_client_subject`);
}

test('SIGUSR1: a terminated connection is in the snapshot with tls_version, tls_cipher and sni', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const upstream = await startUpstream(t, echo);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--log-format', 'json'],
    ...['--tls-cert', a.certPath, '--tls-key', a.keyPath],
  ]);
  const socket = await openEchoedTls(t, cli.port, a, 'snapshot me');
  cli.child.kill('SIGUSR1');
  const live = (await cli.waitForRecord(
    (r) => r.msg === 'live connection',
    5000,
    'the live connection',
  )) as FactsRecord;
  assertClientFacts(live, seen(socket), 'a.example.com', 'the live connection');
  assert.equal(live.upstream_tls_version, undefined, 'a plain upstream');
});

test('SIGUSR1: an originated upstream is in the snapshot with upstream_tls_version and upstream_tls_cipher', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCertificate(dir, 'up', 'upstream.test');
  const upstream = await startTlsUpstream(t, 'U', cert);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.target.address, '--target-tls'],
    ...['--target-ca', cert.certPath, '--target-servername', 'upstream.test'],
    ...['--log-format', 'json'],
  ]);
  const client = connectClient(cli.port);
  t.after(() => client.socket.destroy());
  await waitFor(() => client.received().includes('server U'), 5000, 'the greeting');
  cli.child.kill('SIGUSR1');
  const live = (await cli.waitForRecord(
    (r) => r.msg === 'live connection',
    5000,
    'the live connection',
  )) as FactsRecord;
  assertOriginatedFacts(live);
});

test('--workers 2: /api/connections, the access record and each worker snapshot carry the client TLS facts', async (t) => {
  const dir = await tempDir(t);
  const a = await makeCertificate(dir, 'a', 'a.example.com');
  const client = await signedClientCertificate(dir);
  const [cert, key] = await Promise.all([
    readFile(client.certPath, 'utf8'),
    readFile(client.keyPath, 'utf8'),
  ]);
  const upstream = await startUpstream(t, echo);
  const { cli, port, admin } = await startWorkers(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address],
    ...['--tls-cert', a.certPath, '--tls-key', a.keyPath],
    ...['--tls-client-ca', client.ca.certPath],
  ]);
  // Several connections, so that (with the kernel's or the primary's spread) both
  // workers are likely to hold one; every one of them must carry its facts.
  const sockets: TLSSocket[] = [];
  for (let i = 0; i < 4; i++) {
    sockets.push(await openEchoedTls(t, port, a, `hello ${i}`, { cert, key }));
  }
  const [first] = sockets;
  assert.ok(first !== undefined);
  const facts = seen(first);
  const live = await liveConnections(admin);
  assert.equal(live.length, sockets.length);
  for (const entry of live) {
    assert.match(entry.id ?? '', /^\d+:\d+$/, 'a WORKER:ID id');
    assertClientFacts(
      entry,
      facts,
      'a.example.com',
      `/api/connections ${entry.id}`,
      'CN=client one',
    );
  }

  process.kill(cli.child.pid as number, 'SIGUSR1');
  const snapshotted = (): FactsRecord[] => records(cli).filter((r) => r.msg === 'live connection');
  await waitFor(
    () => snapshotted().length === sockets.length,
    5000,
    'a live connection record each',
  );
  for (const entry of snapshotted()) {
    assert.ok(entry.worker !== undefined, 'written by a worker');
    assertClientFacts(entry, facts, 'a.example.com', `snapshot ${entry.id}`, 'CN=client one');
  }

  for (const socket of sockets) socket.end();
  const closed = (): FactsRecord[] => records(cli).filter((r) => r.msg === 'connection closed');
  await waitFor(() => closed().length === sockets.length, 5000, 'an access record each');
  for (const record of closed()) {
    assert.ok(record.worker !== undefined, 'written by a worker');
    assertClientFacts(
      record,
      facts,
      'a.example.com',
      `access record ${record.id}`,
      'CN=client one',
    );
  }
});

test('--workers 2: /api/connections and the access record carry the upstream TLS facts', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCertificate(dir, 'up', 'upstream.test');
  const upstream = await startTlsUpstream(t, 'U', cert);
  const { cli, port, admin } = await startWorkers(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.target.address, '--target-tls'],
    ...['--target-ca', cert.certPath, '--target-servername', 'upstream.test'],
  ]);
  const client = connectClient(port);
  t.after(() => client.socket.destroy());
  await waitFor(() => client.received().includes('server U'), 5000, 'the greeting');
  const [live] = await liveConnections(admin);
  assertOriginatedFacts(live);
  client.socket.end();
  const closed = (): FactsRecord[] => records(cli).filter((r) => r.msg === 'connection closed');
  await waitFor(() => closed().length > 0, 5000, 'the access record');
  assert.equal(closed()[0]?.upstream_tls_version, live?.upstream_tls_version);
  assert.equal(closed()[0]?.upstream_tls_cipher, live?.upstream_tls_cipher);
});

test('--workers 2, routing by SNI: /api/connections, each worker snapshot and the access record carry the sni', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCertificate(dir, 'a', 'a.example.com');
  const upstream = await startTlsUpstream(t, 'A', cert);
  const file = join(dir, 'proxy.yaml');
  await writeFile(
    file,
    [
      'listeners:',
      '  - name: tls',
      '    listen: 127.0.0.1:0',
      '    routes:',
      '      - sni: a.example.com',
      `        targets: [${upstream.target.address}]`,
      '      - targets:',
      `          - ${upstream.target.address}`,
      '',
    ].join('\n'),
  );
  const { cli, port, admin } = await startWorkers(t, ['--config', file]);
  const socket = tlsConnect({
    port,
    host: '127.0.0.1',
    servername: 'a.example.com',
    ca: cert.cert,
  });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  let got = '';
  socket.on('data', (chunk: Buffer) => {
    got += chunk.toString('latin1');
  });
  await waitFor(() => got.includes('server A sni=a.example.com'), 5000, 'the greeting');
  const [live] = await liveConnections(admin);
  assert.equal(live?.sni, 'a.example.com');
  assert.equal(live?.tls_version, undefined, 'not terminated: no version of its own');

  process.kill(cli.child.pid as number, 'SIGUSR1');
  const snapshot = await cli.waitForRecord(
    (r) => r.msg === 'live connection',
    5000,
    'the live connection record',
  );
  assert.equal((snapshot as FactsRecord).sni, 'a.example.com');

  socket.end();
  const closed = await cli.waitForRecord(
    (r) => r.msg === 'connection closed',
    5000,
    'the access record',
  );
  assert.equal((closed as FactsRecord).sni, 'a.example.com');
  assert.equal((closed as FactsRecord).worker, (snapshot as FactsRecord).worker);
});
