/**
 * The TLS load generators of bench/tls.ts (agent roles): one bulk stream over TLS
 * (bulk.ts's protocol inside) and loops of one new TLS connection per request, each
 * a full handshake: no `session` is ever offered. Both report what the client saw of
 * its handshakes (protocol, cipher, resumptions) so the run can say what it measured.
 */
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type BulkResult, runStream } from './bulk.js';
import { runChurnLoops } from './churn-loop.js';
import { LOOPBACK, nowMs } from './lib.js';
import { type LoadResult, LoadTally, type LoadWindow, REQUEST_BYTES } from './request-response.js';

/** SERVERNAME is the name the run's certificate is made for and the clients ask for. */
export const SERVERNAME = 'bench.l4proxy.test';

/** TlsClientOptions: where to connect and what to trust (the run's certificate). */
export interface TlsClientOptions {
  port: number;
  ca: string;
}

/** TlsSeen is what a client saw of the handshakes it made: protocol, cipher, resumptions. */
export interface TlsSeen {
  version: string | null;
  cipher: string | null;
  resumed: number;
}

// Every connection starts as a full handshake: no `session` is ever passed in.
function connectTls(options: TlsClientOptions): TLSSocket {
  const socket = tlsConnect({
    host: LOOPBACK,
    port: options.port,
    servername: SERVERNAME,
    ca: options.ca,
  });
  socket.setNoDelay(true);
  return socket;
}

function openTls(options: TlsClientOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connectTls(options);
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** TlsBulkParams: one stream through a TLS terminator at `port`, one way, for `durationMs`. */
export interface TlsBulkParams extends TlsClientOptions {
  toUpstream: boolean;
  durationMs: number;
}

/** tlsBulkClient (agent role) runs one bulk stream over TLS (bulk.ts's protocol inside). */
export async function tlsBulkClient(params: TlsBulkParams): Promise<BulkResult & TlsSeen> {
  const socket = await openTls(params);
  const seen = {
    version: socket.getProtocol(),
    cipher: socket.getCipher().name,
    resumed: socket.isSessionReused() ? 1 : 0,
  };
  const timeout = setTimeout(
    () => socket.destroy(new Error('TLS bulk step timed out')),
    params.durationMs + 20_000,
  );
  try {
    return { ...(await runStream(socket, params.toUpstream, params.durationMs)), ...seen };
  } finally {
    clearTimeout(timeout);
  }
}

/** TlsHandshakeParams: `workers` loops of connect (full handshake), request, response, close. */
export interface TlsHandshakeParams extends TlsClientOptions, LoadWindow {
  workers: number;
}

/** tlsHandshakeClient (agent role) runs `workers` loops of one new TLS connection per request. */
export async function tlsHandshakeClient(
  params: TlsHandshakeParams,
): Promise<LoadResult & TlsSeen> {
  const request = Buffer.alloc(REQUEST_BYTES, 0x71);
  // A call that arrives late (a freshly started agent) starts its window on arrival.
  const startAtMs = Math.max(params.startAtMs, nowMs());
  const tally = new LoadTally({ ...params, startAtMs });
  const seen: TlsSeen = { version: null, cipher: null, resumed: 0 };

  await runChurnLoops({ tally, workers: params.workers, startAtMs }, () => {
    const socket = connectTls(params);
    return {
      socket,
      readyEvent: 'secureConnect',
      request: () => {
        if (socket.isSessionReused()) seen.resumed += 1;
        seen.version = socket.getProtocol();
        seen.cipher = socket.getCipher().name;
        return request;
      },
    };
  });
  return { ...tally.result(), ...seen };
}
