/**
 * `npm run demo`: a small echo upstream on 127.0.0.1:9000 and a proxy in front of it
 * on 127.0.0.1:8080, logging every event (trace level), so that a newcomer can talk
 * through the proxy with `nc 127.0.0.1 8080` and watch what happens inside.
 *
 * The upstream speaks first (a greeting), as SSH or SMTP servers do: the proxy
 * connects to it as soon as a client is accepted, so the greeting arrives at once.
 */
import { createServer, type Socket } from 'node:net';
import { createProxy } from './index.js';

const UPSTREAM_PORT = 9000;
const PROXY_PORT = 8080;

function echo(socket: Socket): void {
  socket.write('hello from the echo upstream; type a line and it comes back\n');
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
}

async function main(): Promise<void> {
  const upstream = createServer({ allowHalfOpen: true }, echo);
  await new Promise<void>((resolve, reject) => {
    upstream.once('error', reject);
    upstream.listen(UPSTREAM_PORT, '127.0.0.1', resolve);
  });
  const proxy = createProxy({
    listen: `127.0.0.1:${PROXY_PORT}`,
    targets: [`127.0.0.1:${UPSTREAM_PORT}`],
    idleTimeoutMs: 60_000,
    log: { level: 'trace' },
  });
  await proxy.listen();
  process.stderr.write(
    `\nl4proxy demo: echo upstream on 127.0.0.1:${UPSTREAM_PORT}, proxy on 127.0.0.1:${PROXY_PORT}\n` +
      `in another terminal:  nc 127.0.0.1 ${PROXY_PORT}\n` +
      'press Ctrl-C to stop\n\n',
  );
  process.once('SIGINT', () => {
    void proxy.close({ graceful: false }).then(() => upstream.close());
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`l4proxy demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
