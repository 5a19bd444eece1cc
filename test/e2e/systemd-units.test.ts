/**
 * The example systemd units (examples/systemd/) agree with the example config and with
 * the command: each FileDescriptorName= is a listener's name, each ListenStream= that
 * listener's `listen`, ExecStart='s flags are accepted by `l4proxy check`, and
 * `systemd-analyze verify` (Debian's systemd package; it runs without systemd as PID 1)
 * finds nothing wrong with the units.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLI_PATH, runCli } from '../helpers/cli.js';

const DIR = fileURLToPath(new URL('../../examples/systemd/', import.meta.url));
const CONFIG = join(DIR, 'config.yaml');
const UNITS = ['l4proxy.service', 'l4proxy.socket', 'l4proxy-db.socket'];

/** unitValues is every `Key=value` of a unit file for `key`, in order (comments skipped). */
function unitValues(file: string, key: string): string[] {
  return readFileSync(join(DIR, file), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));
}

test('each socket of the example units is named after a listener of the example config, at its address', async (t) => {
  const checked = await runCli(t, ['check', '--config', CONFIG]);
  assert.equal(checked.status, 0, checked.stderr);
  // "  web: 0.0.0.0:80 -> ..." per listener.
  const listeners = new Map(
    [...checked.stdout.matchAll(/^ {2}(\S+): (\S+) -> /gm)].map((m) => [m[1], m[2]]),
  );
  const sockets = new Map(
    UNITS.filter((u) => u.endsWith('.socket')).map((u) => [
      unitValues(u, 'FileDescriptorName')[0],
      unitValues(u, 'ListenStream')[0],
    ]),
  );
  assert.deepEqual(
    [...sockets].sort(),
    [...listeners].map(([name, listen]) => [name, listen?.replace(/^\*:/, '')]).sort(),
  );
  assert.deepEqual(unitValues('l4proxy.service', 'Sockets'), ['l4proxy.socket l4proxy-db.socket']);
});

test('the example service runs l4proxy with flags l4proxy check accepts, and a long enough stop timeout', async (t) => {
  const [execStart] = unitValues('l4proxy.service', 'ExecStart');
  const [binary, ...args] = (execStart ?? '').split(' ');
  assert.equal(binary, '/usr/bin/l4proxy');
  const flags = args.map((a) => (a === '/etc/l4proxy/config.yaml' ? CONFIG : a));
  const checked = await runCli(t, ['check', ...flags]);
  assert.equal(checked.status, 0, checked.stderr);
  assert.match(checked.stdout, /shutdown 30s/);
  const stopSec = Number(
    /^(\d+)s$/.exec(unitValues('l4proxy.service', 'TimeoutStopSec')[0] ?? '')?.[1],
  );
  assert.ok(stopSec > 30, `TimeoutStopSec=${stopSec}s is not longer than shutdown_timeout 30s`);
  // V8's JIT needs writable and executable memory.
  assert.deepEqual(unitValues('l4proxy.service', 'MemoryDenyWriteExecute'), []);
  assert.deepEqual(unitValues('l4proxy.service', 'ExecReload'), ['/bin/kill -HUP $MAINPID']);
});

test('systemd-analyze verify accepts the example units', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-units-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // verify checks that ExecStart='s program exists: point it at the built command.
  const command = join(dir, 'l4proxy');
  writeFileSync(command, `#!/bin/sh\nexec "${process.execPath}" "${CLI_PATH}" "$@"\n`);
  chmodSync(command, 0o755);
  for (const unit of UNITS) {
    const text = readFileSync(join(DIR, unit), 'utf8').replaceAll('/usr/bin/l4proxy', command);
    writeFileSync(join(dir, unit), text);
  }
  // It exits 0 even for an unknown key, so anything it says is a failure.
  const verified = spawnSync('systemd-analyze', ['verify', ...UNITS.map((u) => join(dir, u))], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(verified.error, undefined, 'systemd-analyze: apt-get install systemd');
  assert.equal(verified.status, 0, verified.stderr);
  assert.equal(verified.stdout + verified.stderr, '');
});
