/**
 * The churn client loop that bench/churn.ts, bench/admission.ts and bench/tls-clients.ts
 * share: `workers` loops, each opening one connection, sending its request once the
 * connection is ready, reading the whole answer until the server closes, counting it in
 * a `LoadTally`, and starting over until the tally's window ends. What differs between
 * them (plain or TLS connect, the source address, a PROXY header first, what is noted
 * of the handshake) is the one step they pass in: `OpenConnection`.
 */
import type { Socket } from 'node:net';
import { nowMs, sleep } from './lib.js';
import { type LoadTally, RESPONSE_BYTES } from './request-response.js';

/** ChurnConnection is one opened connection of the loop, as `OpenConnection` returns it. */
export interface ChurnConnection {
  /** socket is the connection; the loop destroys it when the exchange is over. */
  socket: Socket;
  /** readyEvent is the event after which the request may be written (`secureConnect` for TLS). */
  readyEvent: 'connect' | 'secureConnect';
  /** request is called once on `readyEvent` and returns the bytes to write. */
  request(): Buffer;
}

/** OpenConnection opens the `n`th connection of a run (`n` counts from 0 across all workers). */
export type OpenConnection = (n: number) => ChurnConnection;

/** ChurnLoops: how many loops, when they start, and the tally they count in. */
export interface ChurnLoops {
  tally: LoadTally;
  workers: number;
  /** startAtMs is when the loops begin (the warm-up, then the tally's window, follow). */
  startAtMs: number;
}

/**
 * runChurnLoops runs `workers` loops of one connection per request until the tally's
 * window ends, and resolves when they have (or 10 s after the window, whichever is
 * first). An exchange counts as done when exactly `RESPONSE_BYTES` arrived before the
 * server's FIN; a timeout (5 s), an error or a close before that counts as an error.
 */
export async function runChurnLoops(loops: ChurnLoops, open: OpenConnection): Promise<void> {
  const { tally } = loops;
  let count = 0;

  // One connection: resolves when it is over, however it ended.
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const startedAt = nowMs();
      let received = 0;
      let done = false;
      const connection = open(count++);
      const socket = connection.socket;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        if (ok) tally.done(startedAt);
        else tally.errors += 1;
        socket.destroy();
        resolve();
      };
      socket.setTimeout(5000, () => finish(false));
      socket.once(connection.readyEvent, () => socket.write(connection.request()));
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      socket.once('end', () => finish(received === RESPONSE_BYTES));
      socket.once('error', () => finish(false));
      socket.once('close', () => finish(false));
    });

  const worker = async (): Promise<void> => {
    await sleep(Math.max(0, loops.startAtMs - nowMs()));
    // Bounded by time; the count bound only guards against a loop that never waits.
    for (let i = 0; i < 10_000_000 && nowMs() < tally.windowEnd; i++) await once();
  };
  await Promise.race([
    Promise.all(Array.from({ length: loops.workers }, worker)),
    sleep(tally.windowEnd - nowMs() + 10_000),
  ]);
}
