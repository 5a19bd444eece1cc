// A throwaway redis-server for the example suites: started on a free port of
// 127.0.0.1 with no persistence, ended by its PID. Needs `redis-server` on the PATH
// (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';

const READY = /Ready to accept connections/;
const START_TIMEOUT_MS = 10_000;
const ATTEMPTS = 5;

/**
 * startRedisServer() resolves with `{ port, stop }` once the server accepts
 * connections; `await stop()` ends it (SIGTERM to its PID) and waits for its exit.
 * A port taken between the check and the start is retried on another, up to 5 times.
 */
export async function startRedisServer() {
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const port = await freePort();
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(child.pid, 'SIGTERM');
      await once(child, 'exit');
    };
    const outcome = await ready(child);
    if (outcome === 'ready') return { port, stop };
    await stop();
    if (outcome !== 'in use') throw new Error(`redis-server on 127.0.0.1:${port}: ${outcome}`);
  }
  throw new Error(`redis-server: no free port after ${ATTEMPTS} attempts`);
}

/** Resolves with 'ready', 'in use' (the port was taken) or what went wrong. */
function ready(child) {
  return new Promise((resolve) => {
    let output = '';
    const timer = setTimeout(
      () => done(`not ready after ${START_TIMEOUT_MS} ms: ${output}`),
      START_TIMEOUT_MS,
    );
    const done = (outcome) => {
      clearTimeout(timer);
      child.stdout.removeAllListeners('data');
      child.stdout.resume(); // keep draining its log so it never blocks on a full pipe
      resolve(outcome);
    };
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      output += chunk;
      if (READY.test(output)) done('ready');
      else if (/already in use/i.test(output)) done('in use');
    });
    child.stderr.resume();
    child.once('error', (err) =>
      done(
        err.code === 'ENOENT'
          ? 'redis-server is not on the PATH (apt-get install redis-server)'
          : err.message,
      ),
    );
    child.once('exit', (code) => done(`exited with code ${code}: ${output}`));
  });
}

/** A port of 127.0.0.1 that was free a moment ago. */
async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}
