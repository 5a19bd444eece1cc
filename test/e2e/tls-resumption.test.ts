/**
 * TLS session resumption through the terminating proxy (issue #15): a TLS 1.3 ticket
 * the proxy issued resumes the session on every worker of `--workers 2` (they share
 * the primary's ticket keys, src/tls/ticket-keys.ts), and still resumes after SIGHUP
 * re-read the certificates. Node's TLS client with the ticket it got, the built CLI,
 * an echo upstream; the access record's `worker` says which worker served each
 * connection. Processes are ended by PID. Build first.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type TestContext, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type CliChild, type LogRecord, spawnCli, startCli, withTimeout } from '../helpers/cli.js';
import { echo, startUpstream, waitFor } from '../helpers/net.js';
import { type CertificateFiles, makeCertificate, tempDir } from '../helpers/tls.js';

/** Visit is one connection: whether it resumed, its client port, and the first ticket it got. */
interface Visit {
  reused: boolean;
  clientPort: number;
  ticket: Buffer | undefined;
}

/**
 * visit connects with `session` (a ticket, or none), waits for an echo and, without a
 * session, for a ticket (a TLS 1.3 server sends its tickets after the handshake), and
 * closes.
 */
async function visit(
  t: TestContext,
  port: number,
  cert: CertificateFiles,
  session?: Buffer,
): Promise<Visit> {
  const socket = tlsConnect({
    port,
    host: '127.0.0.1',
    servername: cert.cn,
    ca: cert.cert,
    ...(session === undefined ? {} : { session }),
  });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  let ticket: Buffer | undefined;
  socket.on('session', (data: Buffer) => {
    ticket ??= data;
  });
  await withTimeout(once(socket, 'secureConnect'), 5000, 'the TLS handshake');
  let got = '';
  socket.on('data', (chunk: Buffer) => {
    got += chunk.toString('latin1');
  });
  socket.write('ping');
  await waitFor(() => got === 'ping', 5000, 'the echo');
  if (session === undefined) await waitFor(() => ticket !== undefined, 5000, 'a session ticket');
  const result = { reused: socket.isSessionReused(), clientPort: socket.localPort ?? 0, ticket };
  socket.end();
  await withTimeout(once(socket, 'close'), 5000, 'the close');
  return result;
}

/** ticketOf is the ticket a first visit got. */
function ticketOf(v: Visit): Buffer {
  assert.ok(v.ticket !== undefined, 'a ticket');
  return v.ticket;
}

type WorkerRecord = LogRecord & { worker?: number; pid?: number };

function closedRecord(cli: CliChild, clientPort: number): WorkerRecord | undefined {
  return (cli.records() as WorkerRecord[]).find(
    (r) => r.msg === 'connection closed' && r.client === `127.0.0.1:${clientPort}`,
  );
}

test('--workers 2: a session ticket from one worker resumes the session on every worker', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCertificate(dir, 'a', 'a.example.com');
  const upstream = await startUpstream(t, echo);
  const cli = spawnCli(t, [
    ...['--workers', '2', '--listen', '127.0.0.1:0', '--target', upstream.address],
    ...['--tls-cert', cert.certPath, '--tls-key', cert.keyPath, '--log-format', 'json'],
  ]);
  t.after(() => {
    for (const r of cli.records() as WorkerRecord[]) {
      if (r.msg !== 'worker started') continue;
      try {
        process.kill(r.pid as number, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  await cli.waitForRecord((r) => r.msg === 'workers listening', 10_000, 'every worker to listen');
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 1000, 'listening');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);

  const first = await visit(t, port, cert);
  assert.equal(first.reused, false, 'the first connection has no session to resume');
  // Resume with that one ticket until both workers have served a resumed connection.
  const workersResumed = new Set<number>();
  for (let i = 0; i < 20 && workersResumed.size < 2; i++) {
    const again = await visit(t, port, cert, ticketOf(first));
    const record = await waitFor(
      () => closedRecord(cli, again.clientPort) !== undefined,
      5000,
      'the access record',
    ).then(() => closedRecord(cli, again.clientPort));
    assert.equal(again.reused, true, `connection ${i + 2} (worker ${record?.worker}) resumed`);
    if (record?.worker !== undefined) workersResumed.add(record.worker);
  }
  assert.equal(workersResumed.size, 2, 'both workers resumed a session');
});

test('a session issued before SIGHUP re-read the certificates still resumes after it', async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCertificate(dir, 'a', 'a.example.com');
  const upstream = await startUpstream(t, echo);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--log-format', 'json'],
    ...['--tls-cert', cert.certPath, '--tls-key', cert.keyPath],
  ]);
  const first = await visit(t, cli.port, cert);
  cli.child.kill('SIGHUP');
  await cli.waitForRecord((r) => r.msg === 'config reloaded', 5000, 'the reload');
  const again = await visit(t, cli.port, cert, ticketOf(first));
  assert.equal(again.reused, true, 'resumed after the reload');
});
