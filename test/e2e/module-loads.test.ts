/**
 * Which modules a command loads (issue #11, fast to start): the built CLI and the
 * built library run under test/helpers/record-loads.mjs, which writes down every
 * module the process resolves. `--version`, `--help`, a proxy from flags alone and
 * the library import load none of ajv, yaml, prom-client, the admin server, the
 * config file reader or node:cluster's side of the command; `--config` loads the YAML
 * parser and the build-time validator (never ajv), and `--admin` the admin server
 * and prom-client, so each assertion can fail.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type CliChild, spawnCli, startCli, withTimeout } from '../helpers/cli.js';
import { connectClient, echo, startUpstream, waitFor } from '../helpers/net.js';

const HOOK = new URL('../helpers/record-loads.mjs', import.meta.url).href;
const DIST = new URL('../../dist/', import.meta.url).href;
const EXAMPLE = fileURLToPath(new URL('../../examples/proxy.yaml', import.meta.url));

/** HEAVY are the packages a command should load only when it uses them. */
const HEAVY = ['ajv', 'yaml', 'prom-client'];
/** OPTIONAL are our modules of the same kind: admin server, config file, cluster. */
const OPTIONAL = /^(admin\/|cluster|config\/(file|schema-validator|watch)\.js$)/;

/** Loads is what one process loaded: packages by name, our modules relative to dist/. */
interface Loads {
  packages: Set<string>;
  dist: Set<string>;
}

/** recorder names a fresh record file and the node arguments that fill it. */
function recorder(t: TestContext): { nodeArgs: string[]; read(): Loads } {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-loads-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'loads.txt');
  return {
    nodeArgs: ['--import', `${HOOK}?out=${encodeURIComponent(file)}`],
    read: () => parseLoads(readFileSync(file, 'utf8')),
  };
}

function parseLoads(text: string): Loads {
  const loads: Loads = { packages: new Set(), dist: new Set() };
  for (const url of text.split('\n')) {
    if (url.startsWith(DIST)) loads.dist.add(url.slice(DIST.length));
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1] !== undefined) loads.packages.add(match[1]);
  }
  return loads;
}

function assertLight(loads: Loads, what: string): void {
  // A sanity check that the record holds anything at all.
  assert.ok(loads.dist.has('cli.js') || loads.dist.has('index.js'), `${what}: nothing recorded`);
  for (const name of HEAVY) assert.ok(!loads.packages.has(name), `${what} loaded ${name}`);
  const optional = [...loads.dist].filter((m) => OPTIONAL.test(m));
  assert.deepEqual(optional, [], `${what} loaded these modules of dist/`);
}

async function exitOf(cli: CliChild): Promise<void> {
  const exit = await cli.waitForExit(10_000);
  assert.equal(exit.status, 0, cli.stderr());
}

/** stopped ends a running CLI (SIGTERM, by its PID) and waits for its clean exit. */
async function stopped(cli: CliChild): Promise<void> {
  cli.child.kill('SIGTERM');
  await exitOf(cli);
}

/** proxiesBytes sends bytes through the proxy on `port` to an echo upstream and back. */
async function proxiesBytes(port: number): Promise<void> {
  const client = connectClient(port);
  client.socket.end('hello through the proxy');
  await waitFor(() => client.sawEnd, 5000, 'the echo and its FIN');
  assert.equal(client.received().toString(), 'hello through the proxy');
}

test('--version and --help load no package and nothing of the proxy itself', async (t) => {
  for (const flag of ['--version', '--help']) {
    const record = recorder(t);
    await exitOf(spawnCli(t, [flag], { nodeArgs: record.nodeArgs }));
    const loads = record.read();
    assertLight(loads, flag);
    assert.deepEqual([...loads.packages], [], `${flag} loaded packages`);
    for (const m of ['create-proxy.js', 'supervisor.js', 'listener.js'])
      assert.ok(!loads.dist.has(m), `${flag} loaded ${m}`);
  }
});

test('a proxy from flags alone serves a connection without loading ajv, yaml, prom-client or admin/', async (t) => {
  const upstream = await startUpstream(t, echo);
  const record = recorder(t);
  const cli = await startCli(t, ['--listen', '127.0.0.1:0', '--target', upstream.address], {
    nodeArgs: record.nodeArgs,
  });
  await proxiesBytes(cli.port);
  await stopped(cli);
  const loads = record.read();
  assertLight(loads, '--listen/--target');
  assert.ok(loads.dist.has('supervisor.js'), 'the proxy itself was loaded');
});

test('--config loads the YAML parser and the build-time validator, never ajv', async (t) => {
  const record = recorder(t);
  await exitOf(spawnCli(t, ['check', '--config', EXAMPLE], { nodeArgs: record.nodeArgs }));
  const loads = record.read();
  assert.ok(loads.packages.has('yaml'), 'yaml was not loaded');
  assert.ok(loads.dist.has('config/schema-validator.js'), 'the validator was not loaded');
  assert.ok(!loads.packages.has('ajv'), 'ajv was loaded at run time');
  assert.ok(!loads.packages.has('prom-client'), 'prom-client was loaded');
});

test('--admin loads the admin server and prom-client', async (t) => {
  const upstream = await startUpstream(t, echo);
  const record = recorder(t);
  const cli = await startCli(
    t,
    ['--listen', '127.0.0.1:0', '--target', upstream.address, '--admin', '127.0.0.1:0'],
    { nodeArgs: record.nodeArgs },
  );
  await proxiesBytes(cli.port);
  await stopped(cli);
  const loads = record.read();
  assert.ok(loads.dist.has('admin/server.js'), 'the admin server was not loaded');
  assert.ok(loads.packages.has('prom-client'), 'prom-client was not loaded');
  assert.ok(!loads.packages.has('yaml') && !loads.packages.has('ajv'), 'a config package loaded');
});

/** runLibrary runs `body` as an ES module that has imported dist/index.js as `l4proxy`. */
async function runLibrary(t: TestContext, body: string): Promise<Loads> {
  const record = recorder(t);
  const index = pathToFileURL(fileURLToPath(new URL('index.js', DIST))).href;
  const source = `import * as l4proxy from ${JSON.stringify(index)};\n${body}`;
  const child = spawn(
    process.execPath,
    [...record.nodeArgs, '--input-type=module', '--eval', source],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const status = await withTimeout(
    new Promise<number | null>((resolve) => child.on('close', resolve)),
    10_000,
    'the library script to exit',
  );
  assert.equal(status, 0, stderr);
  return record.read();
}

test('importing the library and running a proxy loads no ajv, yaml or prom-client', async (t) => {
  const loads = await runLibrary(
    t,
    `const proxy = l4proxy.createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9'] });
     await proxy.listen();
     await proxy.close();`,
  );
  for (const name of HEAVY) assert.ok(!loads.packages.has(name), `the library loaded ${name}`);
  assert.ok(loads.dist.has('supervisor.js'), 'the proxy itself was loaded');
});

test('an AdminServer made through the library loads prom-client', async (t) => {
  const loads = await runLibrary(
    t,
    `const proxy = l4proxy.createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9'] });
     const admin = new l4proxy.AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
     await admin.close();`,
  );
  assert.ok(loads.packages.has('prom-client'), 'prom-client was not loaded');
});
