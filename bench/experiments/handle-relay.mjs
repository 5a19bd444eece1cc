/**
 * An experiment, not the proxy: a plain relay on libuv's TCP handles, with no
 * net.Socket on either side. It measures what issue #16's connection targets would
 * take (docs/performance.md, "What a relay without net.Socket would give").
 *
 * It does what the proxy's data path does for a plain TCP connection and nothing
 * else: accept, connect to one target, copy bytes both ways (a side stops reading
 * while its peer's write is pending), pass a FIN on as a shutdown, close both when
 * both directions are done or on any error. No access record, no timers, no stages,
 * no balancing, no statistics, no logging.
 *
 * The handles are Node's internal bindings (process.binding('tcp_wrap') and
 * 'stream_wrap'), the ones net.Socket is built on; Node 20, 24 and 26 have them.
 *
 * Usage: node bench/experiments/handle-relay.mjs LISTEN_PORT TARGET_PORT
 * (both on 127.0.0.1), e.g. as a subject of the shared kit:
 *   --subject 'handles=node bench/experiments/handle-relay.mjs {listen} {target}'
 */
const { TCP, TCPConnectWrap, constants } = process.binding('tcp_wrap');
const {
  WriteWrap,
  ShutdownWrap,
  streamBaseState,
  kReadBytesOrError,
  kArrayBufferOffset,
  kLastWriteWasAsync,
} = process.binding('stream_wrap');

const HOST = '127.0.0.1';
const UV_EOF = -4095;
const [listenPort, targetPort] = process.argv.slice(2, 4).map(Number);

/** Side is one socket of a pair: its handle, its peer and its writes in flight. */
class Side {
  constructor(pair, handle) {
    this.pair = pair;
    this.handle = handle;
    this.peer = null;
    this.pendingWrites = 0;
    handle.side = this;
  }
}

/** Pair is one proxied connection (the proxy's context, reduced to its sockets). */
class Pair {
  constructor(clientHandle) {
    this.closed = false;
    this.shutdowns = 0;
    this.client = new Side(this, clientHandle);
    this.upstream = new Side(this, new TCP(constants.SOCKET));
    this.client.peer = this.upstream;
    this.upstream.peer = this.client;
    const req = new TCPConnectWrap();
    req.oncomplete = afterConnect;
    req.pair = this;
    if (this.upstream.handle.connect(req, HOST, targetPort) !== 0) this.close();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.client.handle.close();
    this.upstream.handle.close();
  }
}

function afterConnect(status, _handle, req) {
  const pair = req.pair;
  if (pair.closed) return;
  if (status < 0) {
    pair.close();
    return;
  }
  for (const side of [pair.client, pair.upstream]) {
    side.handle.setNoDelay(true);
    side.handle.onread = onRead;
    side.handle.readStart();
  }
}

// `this` is the write request; its side is the one written to.
function afterWrite(status) {
  const side = this.side;
  side.pendingWrites -= 1;
  if (status < 0) side.pair.close();
  else if (side.pendingWrites === 0 && !side.pair.closed) side.peer.handle.readStart();
}

function afterShutdown() {
  const pair = this.side.pair;
  pair.shutdowns += 1;
  if (pair.shutdowns === 2) pair.close();
}

// `this` is the handle read from.
function onRead(arrayBuffer) {
  const side = this.side;
  const pair = side.pair;
  if (pair.closed) return;
  const nread = streamBaseState[kReadBytesOrError];
  if (nread > 0) {
    const out = side.peer;
    const req = new WriteWrap();
    req.side = out;
    req.handle = out.handle;
    req.oncomplete = afterWrite;
    req.async = false;
    const chunk = Buffer.from(arrayBuffer, streamBaseState[kArrayBufferOffset], nread);
    if (out.handle.writeBuffer(req, chunk) !== 0) pair.close();
    else if (streamBaseState[kLastWriteWasAsync]) {
      out.pendingWrites += 1;
      this.readStop();
    }
  } else if (nread === UV_EOF) {
    this.readStop();
    const req = new ShutdownWrap();
    req.side = side.peer;
    req.handle = side.peer.handle;
    req.oncomplete = afterShutdown;
    if (side.peer.handle.shutdown(req) !== 0) pair.close();
  } else if (nread < 0) {
    pair.close();
  }
}

const server = new TCP(constants.SERVER);
const err = server.bind(HOST, listenPort) || server.listen(4096);
if (err !== 0) {
  console.error(`handle-relay: cannot listen on ${HOST}:${listenPort} (${err})`);
  process.exit(1);
}
server.onconnection = (status, clientHandle) => {
  if (status === 0) new Pair(clientHandle);
};
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
