/**
 * haproxy as the benchmark's yardstick (bench/tls.ts): Debian's haproxy, one thread,
 * TCP mode, terminating TLS with `bind ... ssl crt` in front of the same plain upstream
 * as the proxy under test. It runs in the foreground (`-db`) in a process of its own, so
 * its CPU time is read from /proc as the proxy's is, and it is stopped by PID.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOOPBACK } from './lib.js';
import { freePort, type ProxyProcess, startListening, stopProcess } from './processes.js';

/** haproxyVersion is the first line of `haproxy -v`, or null when haproxy is not installed. */
export function haproxyVersion(): string | null {
  const result = spawnSync('haproxy', ['-v'], { encoding: 'utf8', timeout: 10_000 });
  if (result.error !== undefined || result.status !== 0) return null;
  return (result.stdout.split('\n')[0] ?? '').trim();
}

/**
 * haproxyConfig is the whole configuration: one thread (the proxy under test is one
 * event loop), TCP mode, TLS terminated with the certificate and key in `pemPath`
 * (haproxy wants both in one file), relayed to the upstream in plain TCP.
 */
function haproxyConfig(port: number, targetPort: number, pemPath: string): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4096', // haproxy raises its descriptor limit to about twice this
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend tls_in',
    `  bind ${LOOPBACK}:${port} ssl crt ${pemPath}`,
    '  default_backend upstream',
    'backend upstream',
    `  server u1 ${LOOPBACK}:${targetPort}`,
    '',
  ].join('\n');
}

/**
 * startHaproxy writes a configuration into `dir`, starts `haproxy -db -f CONFIG` and
 * resolves once it accepts connections; the caller must stop() it. Its output goes to
 * a file in `dir`, shown if it fails to start.
 */
export async function startHaproxy(
  dir: string,
  targetPort: number,
  pemPath: string,
): Promise<ProxyProcess> {
  const port = await freePort();
  const configPath = join(dir, `haproxy-${port}.cfg`);
  const logPath = join(dir, `haproxy-${port}.log`);
  writeFileSync(configPath, haproxyConfig(port, targetPort, pemPath));
  const child = await startListening(
    'haproxy',
    'haproxy',
    ['-db', '-f', configPath],
    port,
    logPath,
    'both',
  );
  return {
    pid: child.pid as number,
    port,
    // SIGTERM is haproxy's hard stop: every connection closed at once.
    stop: () => stopProcess(child),
  };
}
