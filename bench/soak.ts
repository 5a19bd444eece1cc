/**
 * The soak test: `npm run soak -- --minutes N [--seed S] [--concurrency C]`.
 *
 * It starts the built CLI (`node dist/cli.js`, JSON logs, an admin server) in front
 * of an upstream in a process of its own (bench/soak-upstream.ts), then keeps C
 * connections (default 300) open through it for N minutes. Each connection is one
 * scenario, drawn with the seed: FINs from either side first (with the other
 * direction still sending: half-close), resets from either side (also just after a
 * FIN), random sizes (1 byte to 8 MiB each way), random chunks and pauses, and slow
 * readers on either side that stop reading for up to 1.5 s so backpressure holds.
 *
 * Checks, all of which must hold or it exits 1 with the reason:
 * - every connection not meant to be reset delivered every byte, both ways: the
 *   sha256 and count of what one side wrote equal those of what the other read;
 * - one access record per connection, each cause as often as the scenarios allow
 *   (checkCauses); no warn or error record, no line that is not a JSON record (a
 *   crash's stack trace); an upstream's reset reaches its client as a reset;
 * - no connection hangs (each has HANG_MS to finish);
 * - at the end, with nothing open: the proxy's counters say accepted = closed, 0
 *   active, and the same causes as the access records; its descriptors are back to
 *   the baseline taken after a warm-up (exactly), its RSS within RSS_TOLERANCE;
 * - the proxy then stops on SIGTERM with status 0.
 *
 * Traffic goes to 127.0.0.1 only. Every process started here is ended by PID.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  addTo,
  encodeHeader,
  finish,
  type Header,
  intBetween,
  logUniform,
  makePool,
  makeRng,
  newTally,
  onData,
  type Rng,
  sendStream,
  sleep,
  type Tally,
  UpstreamMode,
} from './soak-lib.js';
import { describeNew, descriptors, rssBytes } from './soak-proc.js';
import type { UpstreamCounts, UpstreamReport } from './soak-upstream.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HANG_MS = 120_000;
/** RSS after the run may exceed the baseline by this much (the larger of the two). */
const RSS_TOLERANCE = { bytes: 64 * 1024 * 1024, fraction: 0.5 };
/** Descriptors after the run may exceed the baseline by this many. */
const FD_TOLERANCE = 0;
/** On Node 20 a reset soon after a write goes out as a FIN (see settle). */
const RESET_AFTER_WRITE_IS_FIN = Number(process.versions.node.split('.')[0]) < 24;

// ---------------------------------------------------------------- options

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '300' },
  },
});
const minutes = Number(values.minutes);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const concurrency = Number(values.concurrency);
if (!(minutes > 0 && minutes <= 24 * 60) || !Number.isInteger(seed) || !(concurrency >= 1)) {
  console.error('usage: npm run soak -- --minutes N [--seed S] [--concurrency C]');
  process.exit(2);
}

// ---------------------------------------------------------------- scenarios

type ClientMode = 'finWhenDone' | 'finAfterUpstream' | 'reset' | 'finThenReset';

/** Scenario: what each side does, and which close causes the access record may show. */
interface Scenario {
  name: string;
  weight: number;
  client: ClientMode;
  upstream: UpstreamMode;
  causes: readonly string[];
  /** hashed: no reset is meant to happen, so every byte must arrive. */
  hashed: boolean;
  /** clientSeesReset: the client must see ECONNRESET (the upstream's reset passed on). */
  clientSeesReset: boolean;
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'client FIN first',
    weight: 30,
    client: 'finWhenDone',
    upstream: UpstreamMode.finAfterClient,
    causes: ['client_fin'],
    hashed: true,
    clientSeesReset: false,
  },
  {
    name: 'upstream FIN first',
    weight: 25,
    client: 'finAfterUpstream',
    upstream: UpstreamMode.finFirst,
    causes: ['upstream_fin'],
    hashed: true,
    clientSeesReset: false,
  },
  {
    name: 'FINs crossing',
    weight: 15,
    client: 'finWhenDone',
    upstream: UpstreamMode.finWhenDone,
    causes: ['client_fin', 'upstream_fin'],
    hashed: true,
    clientSeesReset: false,
  },
  {
    name: 'client reset',
    weight: 8,
    client: 'reset',
    upstream: UpstreamMode.finAfterClient,
    causes: ['client_reset'],
    hashed: false,
    clientSeesReset: false,
  },
  {
    // A reset that may arrive while the proxy is still shutting the write side down.
    name: 'client FIN then reset',
    weight: 6,
    client: 'finThenReset',
    upstream: UpstreamMode.finAfterClient,
    causes: ['client_reset', 'client_fin'],
    hashed: false,
    clientSeesReset: false,
  },
  {
    name: 'upstream reset',
    weight: 8,
    client: 'finAfterUpstream',
    upstream: UpstreamMode.reset,
    // On Node 20 the upstream's own reset can go out as a FIN (see RESET_AFTER_WRITE_IS_FIN).
    causes: RESET_AFTER_WRITE_IS_FIN ? ['upstream_reset', 'upstream_fin'] : ['upstream_reset'],
    hashed: false,
    clientSeesReset: true,
  },
  {
    name: 'upstream FIN then reset',
    weight: 8,
    client: 'finAfterUpstream',
    upstream: UpstreamMode.finThenReset,
    causes: ['upstream_reset', 'upstream_fin'],
    hashed: false,
    clientSeesReset: false,
  },
];
const TOTAL_WEIGHT = SCENARIOS.reduce((sum, s) => sum + s.weight, 0);

function pickScenario(rng: Rng): Scenario {
  let x = rng() * TOTAL_WEIGHT;
  for (const s of SCENARIOS) {
    x -= s.weight;
    if (x < 0) return s;
  }
  return SCENARIOS[0] as Scenario;
}

/** streamBytes: mostly small, some large, a few big enough to fill every buffer on the way. */
function streamBytes(rng: Rng): number {
  const x = rng();
  if (x < 0.7) return logUniform(rng, 1, 64 * 1024);
  if (x < 0.95) return logUniform(rng, 64 * 1024, 1024 * 1024);
  return logUniform(rng, 1024 * 1024, 8 * 1024 * 1024);
}

// ---------------------------------------------------------------- state

/** ProxyRecord is one JSON line of the proxy's log (the fields the soak reads). */
interface ProxyRecord {
  level?: string;
  msg?: string;
  address?: string;
  client?: string;
  cause?: string;
  bytes_to_upstream?: number;
  bytes_to_client?: number;
  error?: string;
}

interface Conn {
  id: number;
  scenario: Scenario;
  header: Header;
  startedAtMs: number;
  localPort: number | null;
  sent: Tally;
  received: Tally;
  sawEnd: boolean;
  error: string | null;
  closed: boolean;
  hung: boolean;
  up: UpstreamReport | null;
  socket: Socket | null;
}

const failures: string[] = [];
const pool = makePool(seed);
const mainRng = makeRng(seed);
const open = new Map<number, Conn>();
/** Connections closed on the client side and waiting for their report or access record. */
const unsettled = new Map<number, Conn>();
const reports = new Map<number, UpstreamReport>();
let records = 0;
const portless: string[] = []; // causes of records without a client port (see onAccessRecord)
let nextId = 1;
let launching = false;
const totals = {
  started: 0,
  settled: 0,
  hashed: 0,
  bytesToUpstream: 0,
  bytesToClient: 0,
  byScenario: new Map<string, number>(),
  byCause: new Map<string, number>(),
  headerless: 0,
  clientSawReset: 0,
  resetsSeenAsFin: 0,
};

function fail(message: string): void {
  failures.push(message);
  if (failures.length <= 20) console.error(`FAIL ${message}`);
}

/** failureKinds groups the failures by their message with the numbers taken out. */
function failureKinds(): string[] {
  const kinds = new Map<string, { count: number; example: string }>();
  for (const message of failures) {
    const kind = message.replace(/\d+/g, 'N').slice(0, 100);
    const entry = kinds.get(kind) ?? { count: 0, example: message };
    entry.count++;
    kinds.set(kind, entry);
  }
  return [...kinds.values()].map((k) => `  ${k.count} x ${k.example}`);
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

// ---------------------------------------------------------------- processes

const children: ChildProcess[] = [];

function stopAll(): void {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
process.on('exit', stopAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopAll();
    process.exit(130);
  });
}

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
      return false;
    }
    await sleep(20);
  }
  return true;
}

let upstreamCounts: UpstreamCounts | null = null;

function startUpstream(): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(join(ROOT, 'bench/soak-upstream.ts'), [String(seed)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.on('message', function upstreamOnMessage(message: { type: string; port?: number }) {
      if (message.type === 'listening') resolve({ child, port: message.port ?? 0 });
      else if (message.type === 'conn') onUpstreamReport(message as UpstreamReport);
      else if (message.type === 'counts') upstreamCounts = message as UpstreamCounts;
    });
    child.on('exit', (status, signal) => {
      if (!stopping) fail(`the upstream exited (status ${status}, signal ${signal})`);
      reject(new Error('upstream exited'));
    });
  });
}

let stopping = false;
let proxyExit: { status: number | null; signal: string | null } | null = null;

function startProxy(
  upstreamPort: number,
): Promise<{ child: ChildProcess; port: number; admin: string }> {
  const args = ['dist/cli.js', '--listen', '127.0.0.1:0', '--target', `127.0.0.1:${upstreamPort}`];
  args.push('--admin', '127.0.0.1:0', '--log-format', 'json');
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  child.on('exit', (status, signal) => {
    proxyExit = { status, signal };
    if (!stopping) fail(`the proxy exited during the run (status ${status}, signal ${signal})`);
  });
  let port = 0;
  let admin = '';
  let partial = '';
  return new Promise((resolve, reject) => {
    child.stderr?.setEncoding('utf8').on('data', function proxyOnStderr(text: string) {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const record = onProxyLine(line);
        if (record?.msg === 'listening') port = Number(/:(\d+)$/.exec(String(record.address))?.[1]);
        if (record?.msg === 'admin listening') admin = String(record.address);
        if (port > 0 && admin !== '') resolve({ child, port, admin });
      }
    });
    child.on('exit', () => reject(new Error('the proxy exited before listening')));
  });
}

/** onProxyLine takes one line of the proxy's stderr: an access record, or an anomaly. */
function onProxyLine(line: string): ProxyRecord | null {
  if (line === '') return null;
  let record: ProxyRecord;
  try {
    record = JSON.parse(line) as ProxyRecord;
  } catch {
    fail(`the proxy wrote a line that is not a record: ${line}`);
    return null;
  }
  if (record.level === 'warn' || record.level === 'error') fail(`proxy logged: ${line}`);
  if (record.msg === 'connection closed') onAccessRecord(record);
  return record;
}

/**
 * onAccessRecord counts one access record by cause. Records are checked in aggregate
 * (see checkCauses), not matched to connections: the client port, the only key, is
 * reused within seconds at this rate, and a record may come after its port's reuse.
 */
function onAccessRecord(r: ProxyRecord): void {
  records++;
  count(totals.byCause, String(r.cause));
  // A client reset before the proxy read its address is logged without one.
  if (!/:\d+$/.test(String(r.client))) portless.push(`${r.client} ${r.cause}`);
}

function onUpstreamReport(report: UpstreamReport): void {
  if (report.id < 0) {
    totals.headerless++;
    return;
  }
  const conn = unsettled.get(report.id) ?? open.get(report.id);
  if (conn === undefined) {
    reports.set(report.id, report);
    return;
  }
  conn.up = report;
  settle(conn);
}

// ---------------------------------------------------------------- one connection

function startConnection(proxyPort: number): void {
  const connSeed = Math.floor(mainRng() * 2 ** 32);
  const rng = makeRng(connSeed);
  const scenario = pickScenario(rng);
  const toUpstreamBytes = streamBytes(rng);
  const toClientBytes = streamBytes(rng);
  const header: Header = {
    id: nextId++,
    toClientBytes,
    upstreamSeed: connSeed ^ 0x9e3779b9,
    upstreamMode: scenario.upstream,
    upstreamSlow: rng() < 0.15,
    resetAfter: intBetween(rng, 0, toClientBytes),
  };
  const clientSlow =
    rng() < 0.15
      ? {
          afterBytes: intBetween(rng, 0, Math.min(toClientBytes, 256 * 1024)),
          pauseMs: intBetween(rng, 100, 1500),
        }
      : null;
  const conn: Conn = {
    id: header.id,
    scenario,
    header,
    startedAtMs: Date.now(),
    localPort: null,
    sent: newTally(),
    received: newTally(),
    sawEnd: false,
    error: null,
    closed: false,
    hung: false,
    up: reports.get(header.id) ?? null,
    socket: null,
  };
  reports.delete(header.id);
  open.set(conn.id, conn);
  totals.started++;
  count(totals.byScenario, scenario.name);

  const socket = connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true });
  socket.on('error', function clientOnError(err: NodeJS.ErrnoException) {
    conn.error ??= err.code ?? 'UNKNOWN';
  });
  socket.on('end', function clientOnEnd() {
    conn.sawEnd = true;
  });
  onData(socket, (chunk) => addTo(conn.received, chunk), clientSlow);
  socket.on('connect', function clientOnConnect() {
    conn.localPort = socket.localPort ?? null;
    void drive(conn, socket, rng, toUpstreamBytes);
  });
  socket.on('close', function clientOnClose() {
    conn.closed = true;
    open.delete(conn.id);
    unsettled.set(conn.id, conn);
    if (conn.localPort === null) fail(`connection ${conn.id}: could not connect (${conn.error})`);
    settle(conn);
    launch(proxyPort);
  });
  conn.socket = socket;
}

/** drive is the client's side of one connection: send, then FIN or reset as the scenario says. */
async function drive(conn: Conn, socket: Socket, rng: Rng, total: number): Promise<void> {
  const header = encodeHeader(conn.header);
  addTo(conn.sent, header);
  socket.write(header);
  switch (conn.scenario.client) {
    case 'finWhenDone':
      await sendStream(socket, total, rng, pool, conn.sent);
      socket.end();
      break;
    case 'finAfterUpstream': {
      // Part before the upstream's FIN, the rest after it: the client->upstream
      // direction keeps flowing through a half-closed connection.
      const before = intBetween(rng, 0, total);
      await sendStream(socket, before, rng, pool, conn.sent);
      if (!conn.sawEnd && !socket.destroyed) {
        await new Promise((resolve) => socket.once('end', resolve).once('close', resolve));
      }
      await sendStream(socket, total - before, rng, pool, conn.sent);
      if (!socket.destroyed) socket.end();
      break;
    }
    case 'reset':
      await sendStream(socket, intBetween(rng, 0, total), rng, pool, conn.sent);
      if (rng() < 0.5) await sleep(intBetween(rng, 0, 50));
      if (!socket.destroyed) socket.resetAndDestroy();
      break;
    case 'finThenReset':
      // FIN, then a reset while the proxy may still be passing the FIN on.
      await sendStream(socket, total, rng, pool, conn.sent);
      await finish(socket);
      await sleep(intBetween(rng, 0, 20));
      if (!socket.destroyed) socket.resetAndDestroy();
      break;
  }
}

/** settle checks a connection once its client closed, its record came and (if needed) its report. */
function settle(conn: Conn): void {
  if (!conn.closed || !unsettled.has(conn.id)) return;
  if (conn.scenario.hashed && conn.up === null) return;
  unsettled.delete(conn.id);
  totals.settled++;
  totals.bytesToUpstream += conn.sent.bytes;
  totals.bytesToClient += conn.received.bytes;
  if (conn.error === 'ECONNRESET') totals.clientSawReset++;
  if (conn.hung) return; // already reported; its end was forced
  const what = `connection ${conn.id} (${conn.scenario.name}, port ${conn.localPort})`;
  const { scenario } = conn;
  if (scenario.clientSeesReset && conn.error !== 'ECONNRESET' && conn.error !== 'EPIPE') {
    totals.resetsSeenAsFin++;
    // Node 20's resetAndDestroy() sends a FIN when the socket was written to a moment
    // before (Node 24 and 26 send the RST), so there this is counted, not failed.
    if (!RESET_AFTER_WRITE_IS_FIN)
      fail(
        `${what}: the upstream reset, but the client saw ${conn.error ?? (conn.sawEnd ? 'a FIN' : 'a close')}`,
      );
  }
  if (!scenario.hashed || conn.up === null) return;
  totals.hashed++;
  const up = conn.up;
  const sentHash = conn.sent.hash.digest('hex');
  const receivedHash = conn.received.hash.digest('hex');
  if (conn.error !== null || up.error !== null)
    fail(`${what}: unexpected error: client ${conn.error}, upstream ${up.error}`);
  if (!conn.sawEnd || !up.sawEnd)
    fail(`${what}: FIN missing: client ${conn.sawEnd}, upstream ${up.sawEnd}`);
  if (sentHash !== up.rxHash || conn.sent.bytes !== up.rxBytes)
    fail(
      `${what}: to upstream: sent ${conn.sent.bytes} bytes, upstream read ${up.rxBytes}, hashes ${sentHash === up.rxHash ? 'equal' : 'differ'}`,
    );
  if (receivedHash !== up.txHash || conn.received.bytes !== up.txBytes)
    fail(
      `${what}: to client: upstream sent ${up.txBytes} bytes, client read ${conn.received.bytes}, hashes ${receivedHash === up.txHash ? 'equal' : 'differ'}`,
    );
}

// ---------------------------------------------------------------- the run

let launchUntilMs = 0;

/** launch opens connections until `concurrency` are open, while the phase lasts. */
function launch(proxyPort: number): void {
  if (launching) return; // a close inside startConnection (cannot happen today) must not recurse
  launching = true;
  for (let i = 0; open.size < concurrency && Date.now() < launchUntilMs && i < concurrency; i++) {
    startConnection(proxyPort);
  }
  launching = false;
}

/**
 * checkCauses: each cause was logged at least as often as the connections whose
 * scenario allows only that cause, and at most as often as those that allow it.
 */
function checkCauses(): void {
  const causes = new Set([...totals.byCause.keys(), ...SCENARIOS.flatMap((s) => s.causes)]);
  for (const cause of causes) {
    let least = 0;
    let most = 0;
    for (const s of SCENARIOS) {
      const n = totals.byScenario.get(s.name) ?? 0;
      if (s.causes.includes(cause)) most += n;
      if (s.causes.length === 1 && s.causes[0] === cause) least += n;
    }
    const logged = totals.byCause.get(cause) ?? 0;
    if (logged < least || logged > most)
      fail(
        `cause ${cause}: ${logged} access records, expected ${least} to ${most} from the scenarios`,
      );
  }
}

/** forceHung ends connections open for longer than HANG_MS: each is a failure. */
function forceHung(): void {
  const now = Date.now();
  for (const conn of open.values()) {
    if (conn.hung || now - conn.startedAtMs < HANG_MS) continue;
    conn.hung = true;
    fail(
      `connection ${conn.id} (${conn.scenario.name}, port ${conn.localPort}) still open after ${HANG_MS} ms: sent ${conn.sent.bytes}, read ${conn.received.bytes}, FIN seen ${conn.sawEnd}`,
    );
    conn.socket?.destroy();
  }
}

/** phase keeps `concurrency` connections going for `ms`, then waits until all have settled. */
async function phase(name: string, proxyPort: number, ms: number, proxyPid: number): Promise<void> {
  const startedAtMs = Date.now();
  launchUntilMs = startedAtMs + ms;
  let nextReportMs = startedAtMs + 10_000;
  launch(proxyPort);
  // Bounded: the phase's length plus time for the last connections to finish.
  const deadline = launchUntilMs + HANG_MS + 30_000;
  while ((open.size > 0 || Date.now() < launchUntilMs) && Date.now() < deadline) {
    await sleep(100);
    launch(proxyPort); // in case every connection closed at once
    forceHung();
    if (Date.now() >= nextReportMs) {
      nextReportMs += 10_000;
      const s = ((Date.now() - startedAtMs) / 1000).toFixed(0);
      const fds = proxyExit === null ? descriptors(proxyPid).size : 0;
      const rss = proxyExit === null ? mib(rssBytes(proxyPid)) : '-';
      console.log(
        `${name} ${s} s: ${totals.started} connections, ${open.size} open, proxy fds ${fds}, rss ${rss}`,
      );
    }
  }
  await waitUntil(
    () => unsettled.size === 0 && records === totals.started,
    30_000,
    `every connection's access record and upstream report (${unsettled.size} missing)`,
  );
  for (const conn of unsettled.values()) {
    fail(
      `connection ${conn.id} (${conn.scenario.name}, port ${conn.localPort}) unsettled: upstream report ${conn.up !== null}`,
    );
  }
  unsettled.clear();
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** ListenerStats is the part of GET /api/listeners the soak checks. */
interface ListenerStats {
  connections_accepted: number;
  connections_active: number;
  connections_closed: Record<string, number>;
}

/** listenerStats asks the admin server for the one listener's counters (connection closed after). */
function listenerStats(admin: string): Promise<ListenerStats> {
  const [host, port] = [
    admin.slice(0, admin.lastIndexOf(':')),
    admin.slice(admin.lastIndexOf(':') + 1),
  ];
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        path: '/api/listeners',
        agent: false,
        headers: { connection: 'close' },
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => {
          body += s;
        });
        res.on('end', () => {
          try {
            const list = JSON.parse(body) as ListenerStats[];
            if (list.length !== 1 || list[0] === undefined)
              throw new Error(`expected one listener: ${body}`);
            resolve(list[0]);
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('admin request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** settleProxy waits until the proxy and the upstream have no connection open. */
async function settleProxy(admin: string, upstream: ChildProcess): Promise<ListenerStats | null> {
  let stats: ListenerStats | null = null;
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
    stats = await listenerStats(admin).catch((err: Error) => {
      fail(`admin: ${err.message}`);
      return null;
    });
    upstreamCounts = null;
    upstream.send({ type: 'counts' });
    await waitUntil(() => upstreamCounts !== null, 5000, 'the upstream to count its sockets');
    if (
      stats?.connections_active === 0 &&
      upstreamCounts !== null &&
      (upstreamCounts as UpstreamCounts).open === 0
    )
      return stats;
    await sleep(100);
  }
  fail(
    `still open after 30 s: proxy ${stats?.connections_active} connections, upstream ${upstreamCounts?.open} sockets`,
  );
  return stats;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  // Long enough for the heap to reach its working size, so that the RSS baseline means something.
  const warmupMs = Math.min(30_000, Math.max(15_000, minutes * 6_000));
  console.log(
    `soak: seed ${seed}, ${minutes} min (plus ${warmupMs / 1000} s warm-up), ${concurrency} connections at once, node ${process.version}, ${startedAt.toISOString()}`,
  );
  const upstream = await startUpstream();
  const proxy = await startProxy(upstream.port);
  const pid = proxy.child.pid as number;
  console.log(
    `proxy pid ${pid} on 127.0.0.1:${proxy.port}, admin ${proxy.admin}; upstream pid ${upstream.child.pid} on 127.0.0.1:${upstream.port}`,
  );

  await phase('warm-up', proxy.port, warmupMs, pid);
  await settleProxy(proxy.admin, upstream.child);
  const fdsBefore = descriptors(pid);
  const rssBefore = rssBytes(pid);
  console.log(`baseline after warm-up: ${fdsBefore.size} descriptors, rss ${mib(rssBefore)}`);

  const runStartMs = Date.now();
  await phase('soak', proxy.port, minutes * 60_000, pid);
  const runMs = Date.now() - runStartMs;
  const stats = await settleProxy(proxy.admin, upstream.child);

  // Closed sockets leave the descriptor table at once, but give a loaded machine a moment.
  const fdLimit = fdsBefore.size + FD_TOLERANCE;
  let fdsAfter = descriptors(pid);
  for (let i = 0; i < 50 && fdsAfter.size > fdLimit; i++) {
    await sleep(100);
    fdsAfter = descriptors(pid);
  }
  // V8 gives memory back when the process goes idle (its memory reducer), not at once.
  const rssLimit = rssBefore + Math.max(RSS_TOLERANCE.bytes, rssBefore * RSS_TOLERANCE.fraction);
  let rssAfter = rssBytes(pid);
  for (let i = 0; i < 150 && rssAfter > rssLimit; i++) {
    await sleep(100);
    rssAfter = rssBytes(pid);
  }
  if (fdsAfter.size > fdLimit) {
    fail(
      `descriptors leaked: ${fdsBefore.size} after warm-up, ${fdsAfter.size} at the end with nothing open:\n  ${describeNew(fdsBefore, fdsAfter).join('\n  ')}`,
    );
  }
  if (rssAfter > rssLimit)
    fail(
      `rss grew: ${mib(rssBefore)} after warm-up, ${mib(rssAfter)} at the end (limit ${mib(rssLimit)})`,
    );

  if (stats !== null) {
    const closed = Object.values(stats.connections_closed).reduce((a, b) => a + b, 0);
    if (
      stats.connections_accepted !== totals.started ||
      closed !== totals.started ||
      stats.connections_active !== 0
    )
      fail(
        `proxy counters: accepted ${stats.connections_accepted}, closed ${closed}, active ${stats.connections_active}; the soak opened ${totals.started}`,
      );
    for (const cause of new Set([
      ...Object.keys(stats.connections_closed),
      ...totals.byCause.keys(),
    ])) {
      const counted = stats.connections_closed[cause] ?? 0;
      if (counted !== (totals.byCause.get(cause) ?? 0))
        fail(
          `proxy counters: ${counted} closed with ${cause}, access log ${totals.byCause.get(cause) ?? 0}`,
        );
    }
  }
  if (records !== totals.started)
    fail(`${records} access records for ${totals.started} connections`);
  checkCauses();

  stopping = true;
  proxy.child.kill('SIGTERM');
  await waitUntil(() => proxyExit !== null, 10_000, 'the proxy to exit on SIGTERM');
  if (proxyExit !== null && (proxyExit as { status: number | null }).status !== 0)
    fail(`the proxy exited with ${JSON.stringify(proxyExit)} on SIGTERM`);
  upstream.child.disconnect();
  stopAll();

  const causes = [...totals.byCause]
    .sort()
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  const scenarios = [...totals.byScenario].map(([s, n]) => `${s} ${n}`).join(', ');
  const gib = (n: number): string => `${(n / 1024 ** 3).toFixed(2)} GiB`;
  console.log(`
== soak summary (seed ${seed}, node ${process.version}, started ${startedAt.toISOString()})
duration:     ${(warmupMs / 1000).toFixed(0)} s warm-up + ${(runMs / 1000).toFixed(0)} s, ${concurrency} connections at once
connections:  ${totals.started} (${totals.hashed} checked by sha256 both ways; the rest were reset on purpose)
scenarios:    ${scenarios}
bytes:        ${gib(totals.bytesToUpstream)} client -> upstream, ${gib(totals.bytesToClient)} upstream -> client (as the client wrote and read them)
causes:       ${causes}
proxy:        accepted ${stats?.connections_accepted}, active ${stats?.connections_active} at the end; exit ${JSON.stringify(proxyExit)}
upstream:     ${totals.headerless} sockets closed before a whole header arrived (resets before any byte); clients that saw a reset: ${totals.clientSawReset}
resets:       ${totals.resetsSeenAsFin} upstream resets reached the client as a FIN${RESET_AFTER_WRITE_IS_FIN ? ' (Node < 24: counted, not failed)' : ''}
descriptors:  ${fdsBefore.size} after warm-up, ${fdsAfter.size} at the end (tolerance +${FD_TOLERANCE})
rss:          ${mib(rssBefore)} after warm-up, ${mib(rssAfter)} at the end (tolerance +max(${mib(RSS_TOLERANCE.bytes)}, ${RSS_TOLERANCE.fraction * 100}%))
records:      ${records}; ${portless.length} without a client port (a client reset before the proxy read its address)
result:       ${failures.length === 0 ? 'PASS' : `FAIL (${failures.length} problems, by kind:)\n${failureKinds().join('\n')}`}`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error('soak: FAIL', err);
  stopAll();
  process.exit(1);
});
