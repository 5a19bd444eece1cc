/**
 * What can be checked of the container image and the Kubernetes example without
 * Docker or a cluster (docs/deploy.md says what was not): the paths the Dockerfile
 * copies exist after a build, its HEALTHCHECK command works against a real
 * `l4proxy --admin`, and the manifests in examples/kubernetes/ fit together and
 * with the CLI (the ConfigMap's config passes `l4proxy check` with the Deployment's
 * args; the probes answer without a token, /metrics only with it). Build first
 * (`npm run build`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { RequestGuard } from '../../src/admin/guard.js';
import { parseAddress } from '../../src/config/address.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { refusedTarget } from '../helpers/net.js';
import { deadline } from '../helpers/time.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = join(ROOT, 'examples/kubernetes');

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-deploy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------- the Dockerfile

/** Instruction is one Dockerfile instruction, continuation lines joined, in its stage. */
interface Instruction {
  stage: string;
  keyword: string;
  args: string;
}

function dockerfile(): Instruction[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const logical = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '');
  let stage = '';
  return logical.map((line) => {
    const [keyword = '', ...rest] = line.trim().split(/\s+/);
    const args = rest.join(' ');
    if (keyword === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? 'runtime';
    return { stage, keyword: keyword.toUpperCase(), args };
  });
}

/** Copy is a COPY's sources, destination and `--from` stage (null: the build context). */
interface Copy {
  stage: string;
  from: string | null;
  sources: string[];
  dest: string;
}

function copies(): Copy[] {
  return dockerfile()
    .filter((i) => i.keyword === 'COPY')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length) ?? null;
      const paths = words.filter((w) => !w.startsWith('--'));
      return { stage: i.stage, from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' };
    });
}

/** ignoredBy: the .dockerignore pattern that keeps `path` out of the build context, if any. */
function ignoredBy(path: string): string | undefined {
  const patterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  return patterns.find((p) => {
    const re = new RegExp(
      `^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`,
    );
    return re.test(path);
  });
}

test('every path the Dockerfile copies exists after a build, and .dockerignore keeps none out', () => {
  const all = copies();
  assert.ok(all.length > 0);
  for (const copy of all) {
    for (const source of copy.sources) {
      // A path of another stage is a path of this repository there (WORKDIR /app).
      const local = copy.from === null ? source : source.replace(/^\/app\//, '');
      assert.ok(existsSync(join(ROOT, local)), `COPY ${source} (stage ${copy.stage}): no ${local}`);
      if (copy.from === null) assert.equal(ignoredBy(source), undefined, `${source} is ignored`);
    }
  }
  // The build stage has what tsconfig.build.json needs: the file it extends and src/.
  const build = all.filter((c) => c.stage === 'build').flatMap((c) => c.sources);
  const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
    extends: string;
    include: string[];
  };
  for (const needed of [tsconfig.extends.replace(/^\.\//, ''), ...tsconfig.include])
    assert.ok(build.includes(needed), `the build stage does not copy ${needed}`);
  // The runtime stage has what dist/ reads at run time: ../package.json (version.ts),
  // ../schema (config/file.ts), and the dependencies.
  // A destination ending in `/` is a directory: the sources keep their names in it.
  const runtime = all
    .filter((c) => c.stage === 'runtime')
    .flatMap((c) =>
      c.dest.endsWith('/')
        ? c.sources.map((source) => source.split('/').at(-1) ?? '')
        : [c.dest.replace(/^\.\//, '')],
    );
  for (const needed of ['package.json', 'schema', 'node_modules', 'dist'])
    assert.ok(runtime.includes(needed), `the runtime stage does not copy ${needed}: ${runtime}`);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  for (const name of Object.keys(pkg.dependencies))
    assert.ok(existsSync(join(ROOT, 'node_modules', name, 'package.json')), `no ${name}`);
});

test('the Dockerfile runs `l4proxy` (dist/cli.js through a link) as the numeric node user', () => {
  const runtime = dockerfile().filter((i) => i.stage === 'runtime');
  const last = (keyword: string): string =>
    runtime.filter((i) => i.keyword === keyword).at(-1)?.args ?? '';
  assert.deepEqual(JSON.parse(last('ENTRYPOINT')), ['l4proxy']);
  assert.match(last('RUN'), /ln -s \/app\/dist\/cli\.js \/usr\/local\/bin\/l4proxy/);
  assert.match(last('RUN'), /chmod 0755 dist\/cli\.js/);
  assert.ok(readFileSync(join(ROOT, 'dist/cli.js'), 'utf8').startsWith('#!/usr/bin/env node\n'));
  assert.equal(last('USER'), '1000:1000');
  // The default command serves the admin on the port HEALTHCHECK asks and EXPOSE names.
  const cmd = JSON.parse(last('CMD')) as string[];
  assert.equal(cmd[cmd.indexOf('--admin') + 1], '127.0.0.1:9090');
  assert.ok(last('EXPOSE').split(/\s+/).includes('9090'));
  assert.ok(healthcheck().join(' ').includes("'http://127.0.0.1:9090/healthz'"));
});

/** healthcheck is the HEALTHCHECK's CMD, as the JSON array it is written as. */
function healthcheck(): string[] {
  const args = dockerfile().find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '';
  const json = /\bCMD\s+(\[.*\])\s*$/.exec(args)?.[1];
  assert.ok(json !== undefined, `no CMD [...] in HEALTHCHECK ${args}`);
  return JSON.parse(json) as string[];
}

/** runHealthcheck runs the HEALTHCHECK command (its node, ours) with `url`; resolves with the exit status. */
function runHealthcheck(url: string): Promise<number | null> {
  const [node, ...args] = healthcheck();
  assert.equal(node, 'node');
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      args,
      { env: { ...process.env, L4PROXY_HEALTHCHECK_URL: url }, timeout: deadline(5000) },
      () => resolve(child.exitCode),
    );
  });
}

test('the HEALTHCHECK command exits 0 against a running l4proxy --admin and 1 when nothing answers', async (t) => {
  const cli = spawnCli(t, [
    '-l',
    '127.0.0.1:0',
    '-t',
    '127.0.0.1:1',
    '--admin',
    '127.0.0.1:0',
    '--log-format',
    'json',
  ]);
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening');
  assert.equal(await runHealthcheck(`http://${admin.address}/healthz`), 0);
  assert.equal(await runHealthcheck(`http://${admin.address}/no-such-page`), 1);
  assert.equal(await runHealthcheck(`http://${await refusedTarget()}/healthz`), 1);
});

// ---------------------------------------------------------------- Kubernetes

// biome-ignore lint/suspicious/noExplicitAny: parsed manifests are walked by path and checked as they are read
type Manifest = any;

function manifests(): Map<string, Manifest> {
  const byKind = new Map<string, Manifest>();
  for (const file of ['configmap.yaml', 'secret.yaml', 'deployment.yaml', 'service.yaml']) {
    for (const doc of parseAllDocuments(readFileSync(join(K8S, file), 'utf8'))) {
      assert.deepEqual(doc.errors, [], file);
      const m = doc.toJS() as Manifest;
      assert.ok(!byKind.has(m.kind), `two ${m.kind}s`);
      byKind.set(m.kind, m);
    }
  }
  return byKind;
}

/** flagValue is the value after `flag` in `args`. */
function flagValue(args: readonly string[], flag: string): string {
  const i = args.indexOf(flag);
  assert.ok(i >= 0 && i + 1 < args.length, `no ${flag} in ${args.join(' ')}`);
  return args[i + 1] as string;
}

function k8s() {
  const m = manifests();
  const deployment = m.get('Deployment');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  return {
    m,
    deployment,
    pod,
    container,
    args: container.args as string[],
    configMap: m.get('ConfigMap'),
    secret: m.get('Secret'),
    service: m.get('Service'),
  };
}

/** mountedFile finds the volume mounted over `path` and the key of the file in it. */
function mountedFile(pod: Manifest, container: Manifest, path: string) {
  const mount = container.volumeMounts.find((v: Manifest) => path.startsWith(`${v.mountPath}/`));
  assert.ok(mount !== undefined, `nothing is mounted over ${path}`);
  const volume = pod.volumes.find((v: Manifest) => v.name === mount.name);
  assert.ok(volume !== undefined, `no volume ${mount.name}`);
  return { volume, key: path.slice(mount.mountPath.length + 1) };
}

test('the Kubernetes manifests fit together: names, selectors, volumes, ports, probes, security', () => {
  const { m, deployment, pod, container, args, configMap, secret, service } = k8s();
  assert.deepEqual([...m.keys()].sort(), ['ConfigMap', 'Deployment', 'Secret', 'Service']);
  const kustomization = readFileSync(join(K8S, 'kustomization.yaml'), 'utf8');
  for (const file of ['configmap.yaml', 'secret.yaml', 'deployment.yaml', 'service.yaml'])
    assert.ok(kustomization.includes(`- ${file}`), `kustomization.yaml lacks ${file}`);

  const labels = deployment.spec.template.metadata.labels;
  for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels))
    assert.equal(labels[k], v, `selector ${k}`);
  for (const [k, v] of Object.entries(service.spec.selector))
    assert.equal(labels[k], v, `Service selector ${k}`);

  // --config and --admin-token-file are files of the ConfigMap and the Secret.
  const config = mountedFile(pod, container, flagValue(args, '--config'));
  assert.equal(config.volume.configMap.name, configMap.metadata.name);
  assert.equal(typeof configMap.data[config.key], 'string');
  const token = mountedFile(pod, container, flagValue(args, '--admin-token-file'));
  assert.equal(token.volume.secret.secretName, secret.metadata.name);
  assert.ok(token.key in secret.stringData);
  assert.ok(args.includes('--watch-config'));

  // Probes, the Service and Prometheus point at ports the container has.
  const ports = new Map<string, number>(
    container.ports.map((p: Manifest) => [p.name, p.containerPort]),
  );
  const adminPort = Number(/:(\d+)$/.exec(flagValue(args, '--admin'))?.[1]);
  assert.equal(ports.get(container.readinessProbe.httpGet.port), adminPort);
  assert.equal(ports.get(container.livenessProbe.httpGet.port), adminPort);
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  for (const port of service.spec.ports) assert.ok(ports.has(port.targetPort), port.targetPort);
  const annotations = deployment.spec.template.metadata.annotations;
  assert.equal(annotations['prometheus.io/scrape'], 'true');
  assert.equal(Number(annotations['prometheus.io/port']), adminPort);
  assert.equal(annotations['prometheus.io/path'], '/metrics');

  // Non-root (the Dockerfile's numeric user), read-only, no capabilities, limits set.
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const user = dockerfile()
    .filter((i) => i.keyword === 'USER')
    .at(-1)?.args;
  assert.equal(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`, user);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
  for (const kind of ['requests', 'limits'])
    assert.ok(container.resources[kind].memory && container.resources[kind].cpu, kind);
});

/** extractConfig writes the ConfigMap's config file to `dir` and returns its path. */
function extractConfig(dir: string, edit: (text: string) => string = (s) => s): string {
  const { pod, container, args, configMap } = k8s();
  const { key } = mountedFile(pod, container, flagValue(args, '--config'));
  const file = join(dir, key);
  writeFileSync(file, edit(configMap.data[key]));
  return file;
}

/** localArgs is the Deployment's args with --config (and more) pointed at local files. */
function localArgs(args: readonly string[], replace: Readonly<Record<string, string>>): string[] {
  return args.map((arg, i) => {
    const flag = args[i - 1];
    return flag !== undefined && flag in replace ? (replace[flag] as string) : arg;
  });
}

test("the ConfigMap's config passes `l4proxy check` with the Deployment's args; the grace period outlasts every drain", async (t) => {
  const { pod, container, args } = k8s();
  const file = extractConfig(tempDir(t));
  const result = await runCli(t, ['check', ...localArgs(args, { '--config': file })]);
  assert.equal(result.status, 0, result.stderr);
  const shutdowns = [...result.stdout.matchAll(/shutdown (\d+)(ms|s|m)\b/g)].map(
    ([, n, unit]) => Number(n) * { ms: 0.001, s: 1, m: 60 }[unit as 'ms' | 's' | 'm'],
  );
  assert.ok(shutdowns.length > 0, result.stdout);
  const preStop = container.lifecycle.preStop.exec.command;
  assert.deepEqual(preStop.slice(0, 1), ['sleep']);
  const budget = Number(preStop[1]) + Math.max(...shutdowns);
  assert.ok(
    pod.terminationGracePeriodSeconds > budget,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= preStop + shutdown timeout ${budget}`,
  );
});

/** get makes a GET to `address` with this Host header (and token); resolves with the status. */
function get(address: string, path: string, host: string, token?: string): Promise<number> {
  const [, hostname, port] = /^(.*):(\d+)$/.exec(address) ?? [];
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port: Number(port),
        path,
        headers: { host, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.setTimeout(deadline(3000), () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject).end();
  });
}

test("the Deployment's admin setup: probes need no token, /metrics does, the kubelet's Host is answered", async (t) => {
  const { args } = k8s();
  const dir = tempDir(t);
  // The listener's port and the admin address move to loopback port 0 (tests stay on
  // loopback); everything else runs as the Deployment says.
  const file = extractConfig(dir, (text) => text.replace(/listen: \d+/g, 'listen: 127.0.0.1:0'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'sesame\n');
  const cli = spawnCli(
    t,
    localArgs(args, {
      '--config': file,
      '--admin-token-file': tokenFile,
      '--admin': '127.0.0.1:0',
    }),
  );
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening', 5000, 'the admin');
  const address = admin.address ?? '';
  assert.equal(await get(address, '/healthz', address), 200);
  assert.equal(await get(address, '/readyz', address), 200);
  assert.equal(await get(address, '/metrics', address), 401);
  assert.equal(await get(address, '/metrics', address, 'sesame'), 200);
  assert.equal(await get(address, '/healthz', 'evil.example'), 403);

  // On 0.0.0.0 (as deployed) the kubelet's and Prometheus' Host, the pod's IP and
  // port, is the admin's own address; a name is not.
  const deployed = new RequestGuard(parseAddress(flagValue(args, '--admin')), []);
  assert.equal(deployed.hostRefusal('10.244.1.17:9090'), null);
  assert.equal(deployed.hostRefusal('[fd00::17]:9090'), null);
  assert.notEqual(deployed.hostRefusal('evil.example:9090'), null);
});
