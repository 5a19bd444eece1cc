/**
 * The soak's upstream, in a process of its own (forked by bench/soak.ts with an IPC
 * channel). Each connection starts with a header from the client (bench/soak-lib.ts)
 * that says how many bytes to send back, when to FIN or reset, and whether to read
 * slowly. When a socket closes, the upstream reports to the driver what it read and
 * wrote (byte counts and sha256), whether it saw a FIN, and the error if any.
 *
 * Argument: the run's seed. Listens on 127.0.0.1, port 0; the port is the first message.
 */
import { createServer, type Socket } from 'node:net';
import {
  addTo,
  decodeHeader,
  finish,
  HEADER_BYTES,
  type Header,
  intBetween,
  makePool,
  makeRng,
  newTally,
  onData,
  sendStream,
  sleep,
  type Tally,
  UpstreamMode,
} from './soak-lib.js';

/** UpstreamReport is what the upstream tells the driver about one closed connection. */
export interface UpstreamReport {
  type: 'conn';
  /** id from the header; -1 when the socket closed before a whole header arrived. */
  id: number;
  rxBytes: number;
  rxHash: string;
  txBytes: number;
  txHash: string;
  sawEnd: boolean;
  error: string | null;
}

/** UpstreamCounts answers the driver's 'counts' request. */
export interface UpstreamCounts {
  type: 'counts';
  accepted: number;
  open: number;
}

const seed = Number(process.argv[2] ?? 1);
const pool = makePool(seed);
let accepted = 0;
let open = 0;

function send(message: UpstreamReport | UpstreamCounts | { type: 'listening'; port: number }) {
  process.send?.(message);
}

function serve(socket: Socket): void {
  accepted++;
  open++;
  const received = newTally();
  const sent = newTally();
  let sawEnd = false;
  let error: string | null = null;
  let header: Header | null = null;
  let pending: Buffer = Buffer.alloc(0);
  socket.on('error', function upstreamOnError(err: NodeJS.ErrnoException) {
    error ??= err.code ?? 'UNKNOWN';
  });
  socket.on('end', function upstreamOnEnd() {
    sawEnd = true;
  });
  socket.on('close', function upstreamOnClose() {
    open--;
    send({
      type: 'conn',
      id: header?.id ?? -1,
      rxBytes: received.bytes,
      rxHash: received.hash.digest('hex'),
      txBytes: sent.bytes,
      txHash: sent.hash.digest('hex'),
      sawEnd,
      error,
    });
  });
  onData(
    socket,
    function upstreamReceived(chunk) {
      addTo(received, chunk);
      if (header !== null) return;
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < HEADER_BYTES) return;
      header = decodeHeader(pending);
      if (header === null) {
        socket.destroy(); // not a soak client: the driver sees the mismatch
        return;
      }
      if (header.upstreamSlow) {
        // A slow reader: the proxy's writes to us back up, so it must stop reading the client.
        socket.pause();
        const pauseMs = intBetween(makeRng(header.upstreamSeed ^ 0x51), 100, 1500);
        setTimeout(() => socket.resume(), pauseMs).unref();
      }
      void respond(socket, header, sent, () => sawEnd);
    },
    null,
  );
}

/** respond sends the upstream's side of one connection and ends it as the header says. */
async function respond(s: Socket, h: Header, sent: Tally, sawEnd: () => boolean): Promise<void> {
  const rng = makeRng(h.upstreamSeed);
  const total = h.upstreamMode === UpstreamMode.reset ? h.resetAfter : h.toClientBytes;
  await sendStream(s, total, rng, pool, sent);
  if (s.destroyed) return;
  switch (h.upstreamMode) {
    case UpstreamMode.reset:
      // On Node 20 a reset within a few ms of a write goes out as a FIN (Node 24 and
      // later send the RST): wait, so the proxy is sent the reset this case is about.
      await sleep(60);
      if (!s.destroyed) s.resetAndDestroy();
      break;
    case UpstreamMode.finAfterClient:
      if (!sawEnd()) await new Promise((resolve) => s.once('end', resolve).once('close', resolve));
      s.end();
      break;
    case UpstreamMode.finFirst:
    case UpstreamMode.finWhenDone:
      s.end();
      break;
    case UpstreamMode.finThenReset:
      await finish(s);
      await sleep(intBetween(rng, 0, 20));
      if (!s.destroyed) s.resetAndDestroy();
      break;
  }
}

const server = createServer({ allowHalfOpen: true }, serve);
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  const address = server.address();
  send({ type: 'listening', port: typeof address === 'object' && address ? address.port : 0 });
});
process.on('message', (message: { type?: string }) => {
  if (message.type === 'counts') send({ type: 'counts', accepted, open });
});
process.on('disconnect', () => process.exit(0));
