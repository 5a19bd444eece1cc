/**
 * The status page in a real browser: headless Chromium (Debian's `chromium` package,
 * driven by playwright-core with `executablePath`) opens the page of the built CLI's
 * admin server (`--admin 127.0.0.1:0`), watches a live connection appear, closes it
 * from the page, drains a target, and enters a token when the server asks for one.
 *
 * Without /usr/bin/chromium the tests are skipped on a developer's machine and fail
 * in CI (`CI` set), where `.ci/run` installs it. `UPDATE_SCREENSHOT=1` also saves
 * `docs/status-page.png`. Build first (`npm run build`).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { type CliChild, spawnCli, withTimeout } from '../helpers/cli.js';
import {
  connectClient,
  echo,
  type RecordingClient,
  refusedAddress,
  refusedTarget,
  startUpstream,
  waitFor,
} from '../helpers/net.js';
import { deadline } from '../helpers/time.js';

const CHROMIUM_PATH = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM_PATH);
const IN_CI = Boolean(process.env['CI']);
const SCREENSHOT_PATH = fileURLToPath(new URL('../../docs/status-page.png', import.meta.url));

// Skip only off CI: in CI a missing browser is a broken install step, so the suite fails.
const SKIP =
  !HAVE_CHROMIUM && !IN_CI
    ? `${CHROMIUM_PATH} is missing (apt-get install chromium; .ci/run installs it in CI)`
    : false;

// The page polls every 1.5 s; scaled for a busy machine (15 s at the default factor 3).
const UI_TIMEOUT_MS = deadline(5000);

let browser: Browser | undefined;

/** newPage opens a page in a fresh browser context (its own sessionStorage), closed after the test. */
async function newPage(t: TestContext): Promise<Page> {
  if (browser === undefined) throw new Error('the browser did not start');
  const context: BrowserContext = await browser.newContext({
    viewport: { width: 1200, height: 760 },
  });
  t.after(() => context.close());
  const page = await context.newPage();
  const pageErrors: Error[] = [];
  page.on('pageerror', (err) => pageErrors.push(err));
  // A script error on the page fails the test that saw it.
  t.after(() => assert.deepEqual(pageErrors, [], 'the page threw'));
  return page;
}

/** AdminCli is the CLI running from a config file, with its admin URL and listeners' ports. */
interface AdminCli extends CliChild {
  adminUrl: string;
  ports: Map<string, number>;
  /** file is the config file the CLI was started with. */
  file: string;
}

/**
 * startAdminCli writes a config with `listeners` (name → targets) to a temporary
 * file, starts `proxy --config FILE --admin 127.0.0.1:0 --log-format json` (plus a
 * token file when `token` is given), and reads the bound addresses from the log.
 */
async function startAdminCli(
  t: TestContext,
  listeners: Record<string, { targets: string[]; extra?: string }>,
  token?: string,
): Promise<AdminCli> {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-status-page-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const lines = ['listeners:'];
  for (const [name, { targets, extra }] of Object.entries(listeners)) {
    // Each listener needs its own port: take a free one (port 0 twice would collide).
    lines.push(`  - name: ${name}`, `    listen: ${await refusedAddress()}`, '    targets:');
    for (const target of targets) lines.push(`      - ${target}`);
    if (extra !== undefined) lines.push(`    ${extra}`);
  }
  const file = join(dir, 'proxy.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  const args = ['--config', file, '--admin', '127.0.0.1:0', '--log-format', 'json'];
  if (token !== undefined) {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${token}\n`);
    args.push('--admin-token-file', tokenFile);
  }
  const cli = spawnCli(t, args);
  const ports = new Map<string, number>();
  for (const name of Object.keys(listeners)) {
    const record = await cli.waitForRecord(
      (r) => r.msg === 'listening' && r.listener === name,
      10_000,
      `listener ${name}`,
    );
    ports.set(name, Number(/:(\d+)$/.exec(record.address ?? '')?.[1]));
  }
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening', 10_000, 'the admin');
  return Object.assign(cli, { adminUrl: `http://${admin.address}`, ports, file });
}

/** echoing opens a client through the proxy, sends `bytes` and waits for them to come back. */
async function echoing(port: number, bytes: Buffer): Promise<RecordingClient> {
  const client = connectClient(port);
  client.socket.write(bytes);
  await waitFor(() => client.received().length === bytes.length, 10_000, 'the echo');
  return client;
}

function clientAddress(client: RecordingClient): string {
  return `127.0.0.1:${client.socket.localPort}`;
}

describe('status page', { skip: SKIP }, () => {
  before(async () => {
    if (!HAVE_CHROMIUM) {
      throw new Error(
        `${CHROMIUM_PATH} is missing; CI must install it (apt-get install chromium in .ci/run)`,
      );
    }
    // playwright-core brings no browser of its own: it drives Debian's Chromium.
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  after(() => browser?.close());

  test('shows a live connection as it appears and closes it from the page with cause admin_kill', async (t) => {
    const [a, b, c] = [
      await startUpstream(t, echo),
      await startUpstream(t, echo),
      await startUpstream(t, echo),
    ];
    // db's first target refuses: its first client fails over to c, and the page shows the failure.
    const db = { targets: [await refusedTarget(), c.address], extra: 'idle_timeout: 5m' };
    const cli = await startAdminCli(t, { web: { targets: [a.address, b.address] }, db });
    const page = await newPage(t);
    await page.goto(`${cli.adminUrl}/`);
    await page.getByTestId('listener').first().waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await page.getByTestId('connection').count(), 0);

    const web = cli.ports.get('web') ?? 0;
    const client = await echoing(web, Buffer.from('hello through the proxy\n'));
    // Some company for the screenshot: traffic on both listeners.
    const others = [
      await echoing(web, Buffer.alloc(48 * 1024, 'x')),
      await echoing(cli.ports.get('db') ?? 0, Buffer.alloc(300, 'y')),
    ];
    t.after(() => {
      for (const other of others) other.socket.destroy();
    });

    // An operator took db's failing target out of rotation (it shows as drained).
    const failing = encodeURIComponent(db.targets[0] ?? '');
    const drained = await fetch(`${cli.adminUrl}/api/listeners/db/targets/${failing}/drain`, {
      method: 'POST',
    });
    assert.equal(drained.status, 200);

    // Each target shows its open connections: web's two clients went one to a, one to b,
    // db's to c (after its first target refused).
    const open = (address: string) =>
      page.locator(`[data-testid="target"][data-address="${address}"] [data-field="connections"]`);
    for (const address of [a.address, b.address, c.address]) {
      await open(address).filter({ hasText: /^1$/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    }
    assert.equal(await open(db.targets[0] ?? '').textContent(), '0');

    const row = page.locator('[data-testid="connection"]', { hasText: clientAddress(client) });
    await row.waitFor({ timeout: UI_TIMEOUT_MS });
    const id = await row.getAttribute('data-id');
    assert.ok(id !== null && id !== '', 'the row names its connection id');
    const cell = (name: string) => row.locator(`[data-field="${name}"]`).textContent();
    assert.equal(await cell('listener'), 'web');
    assert.equal(await cell('state'), 'relaying');
    assert.equal(await cell('to-upstream'), '24 B');

    if (process.env['UPDATE_SCREENSHOT'] === '1') {
      // Let every connection show up before taking the picture.
      await page.getByTestId('connection').nth(2).waitFor({ timeout: UI_TIMEOUT_MS });
      mkdirSync(join(SCREENSHOT_PATH, '..'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT_PATH, fullPage: true });
    }

    await row.getByTestId('close-connection').click();
    // Close ends both sides with a FIN; the client (allowHalfOpen) sees 'end', no error.
    await withTimeout(client.ended, 10_000, 'the client to see FIN');
    client.socket.end();
    assert.equal(await withTimeout(client.closed, 10_000, 'the client to close'), null);
    const record = await cli.waitForRecord(
      (r) => r.msg === 'connection closed' && r.id === id,
      10_000,
      `the access log record of connection ${id}`,
    );
    assert.equal(record.cause, 'admin_kill');
    await row.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    assert.equal(await page.getByTestId('connection').count(), 2, 'the other two stay');
  });

  test('a listener a reload removed shows as removing until its last connection ends', async (t) => {
    const upstream = await startUpstream(t, echo);
    const cli = await startAdminCli(t, {
      web: { targets: [upstream.address] },
      db: { targets: [upstream.address], extra: 'shutdown_timeout: 5m' },
    });
    const page = await newPage(t);
    await page.goto(`${cli.adminUrl}/`);
    const card = (name: string) => page.locator(`[data-testid="listener"][data-name="${name}"]`);
    await card('db').waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await card('db').locator('[data-field="listener-state"]').textContent(), '');
    const client = await echoing(cli.ports.get('db') ?? 0, Buffer.from('held'));
    t.after(() => client.socket.destroy());

    // db leaves the file; its connection stays open and keeps it on the page.
    const text = readFileSync(cli.file, 'utf8');
    writeFileSync(cli.file, text.slice(0, text.indexOf('  - name: db')));
    const reload = await fetch(`${cli.adminUrl}/api/reload`, { method: 'POST' });
    assert.equal(reload.status, 200);
    const state = card('db').locator('[data-field="listener-state"]');
    await state.filter({ hasText: 'removing' }).waitFor({ timeout: UI_TIMEOUT_MS });
    const open = card('db').locator(
      `[data-testid="target"][data-address="${upstream.address}"] [data-field="connections"]`,
    );
    assert.equal(await open.textContent(), '1');
    assert.equal(await card('web').locator('[data-field="listener-state"]').textContent(), '');

    client.socket.end();
    await withTimeout(client.closed, 10_000, 'the client to close');
    await card('db').waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    assert.equal(await card('web').count(), 1);
  });

  test('lists each listener’s toxics: names, types, streams', async (t) => {
    const upstream = await startUpstream(t, echo);
    const toxics =
      'toxics: [{ name: slow, type: latency, attributes: { latency: 1 } }, { type: noop, stream: upstream }]';
    const cli = await startAdminCli(t, {
      web: { targets: [upstream.address] },
      db: { targets: [upstream.address], extra: toxics },
    });
    const page = await newPage(t);
    await page.goto(`${cli.adminUrl}/`);
    const card = (name: string) => page.locator(`[data-testid="listener"][data-name="${name}"]`);
    const field = card('db').locator('[data-field="toxics"]');
    await field
      .filter({ hasText: 'noop_upstream (noop upstream), slow (latency downstream)' })
      .waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await card('web').locator('[data-field="toxics"]').textContent(), '-');
  });

  test('marks a backup target as backup, as /api/listeners does', async (t) => {
    const [a, b] = [await startUpstream(t, echo), await startUpstream(t, echo)];
    const cli = await startAdminCli(t, {
      web: { targets: [a.address, `{ address: '${b.address}', backup: true }`] },
    });
    const response = await fetch(`${cli.adminUrl}/api/listeners`);
    const [listener] = (await response.json()) as {
      targets: { address: string; backup: boolean }[];
    }[];
    assert.deepEqual(
      listener?.targets.map((x) => [x.address, x.backup]),
      [
        [a.address, false],
        [b.address, true],
      ],
    );
    const page = await newPage(t);
    await page.goto(`${cli.adminUrl}/`);
    const backup = (address: string) =>
      page.locator(`[data-testid="target"][data-address="${address}"] [data-field="backup"]`);
    await backup(b.address)
      .filter({ hasText: /^backup$/ })
      .waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await backup(a.address).textContent(), '');
  });

  test('drains and undrains a target from the page', async (t) => {
    const [a, b] = [await startUpstream(t, echo), await startUpstream(t, echo)];
    const cli = await startAdminCli(t, { web: { targets: [a.address, b.address] } });
    const page = await newPage(t);
    await page.goto(`${cli.adminUrl}/`);
    const target = page.locator(`[data-testid="target"][data-address="${b.address}"]`);
    await target.waitFor({ timeout: UI_TIMEOUT_MS });
    const state = async (): Promise<string | undefined> => {
      const response = await fetch(`${cli.adminUrl}/api/listeners`);
      const listeners = (await response.json()) as {
        targets: { address: string; state: string }[];
      }[];
      return listeners[0]?.targets.find((x) => x.address === b.address)?.state;
    };
    assert.equal(await state(), 'up');

    const button = target.getByTestId('toggle-drain');
    assert.equal(await button.textContent(), 'Drain');
    await button.click();
    await target.locator('[data-field="state"]', { hasText: 'drained' }).waitFor({
      timeout: UI_TIMEOUT_MS,
    });
    assert.equal(await state(), 'drained');
    assert.equal(await button.textContent(), 'Undrain');
    await cli.waitForRecord((r) => r.msg === 'target drained' && r.upstream === b.address);

    await button.click();
    await target.locator('[data-field="state"]', { hasText: 'up' }).waitFor({
      timeout: UI_TIMEOUT_MS,
    });
    assert.equal(await state(), 'up');
  });

  test('asks for the token when the API needs one and shows the data once it is given', async (t) => {
    const token = 's3cret-token';
    const upstream = await startUpstream(t, echo);
    const cli = await startAdminCli(t, { web: { targets: [upstream.address] } }, token);
    const page = await newPage(t);
    const apiRequests: { url: string; authorization: string | undefined }[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/api/')) {
        apiRequests.push({ url: request.url(), authorization: request.headers()['authorization'] });
      }
    });
    await page.goto(`${cli.adminUrl}/`);
    const form = page.getByTestId('token-form');
    await form.waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
    assert.equal(await page.getByTestId('listener').count(), 0, 'no data without the token');

    // A wrong token is refused and the form stays.
    await page.getByTestId('token-input').fill('wrong');
    await page.getByTestId('token-submit').click();
    await page
      .getByTestId('token-hint')
      .filter({ hasText: 'refused' })
      .waitFor({ timeout: UI_TIMEOUT_MS });
    assert.ok(await form.isVisible());

    await page.getByTestId('token-input').fill(token);
    await page.getByTestId('token-submit').click();
    await page.getByTestId('listener').first().waitFor({ timeout: UI_TIMEOUT_MS });
    await form.waitFor({ state: 'hidden', timeout: UI_TIMEOUT_MS });
    const name = page.getByTestId('listener').first().locator('[data-field="name"]');
    assert.equal(await name.textContent(), 'web');
    assert.equal(
      await page.evaluate('sessionStorage.getItem("proxy-admin-token")'),
      token,
      'the token is kept in sessionStorage',
    );
    assert.ok(!page.url().includes(token), 'the token is not in the page URL');
    assert.ok(
      apiRequests.every((r) => !r.url.includes(token)),
      'the token is never in a request URL',
    );
    assert.ok(
      apiRequests.some((r) => r.authorization === `Bearer ${token}`),
      'the token is sent as a Bearer header',
    );

    // A live connection shows too, and the Close button works with the token.
    const client = await echoing(cli.ports.get('web') ?? 0, Buffer.from('hi'));
    const row = page.locator('[data-testid="connection"]', { hasText: clientAddress(client) });
    await row.waitFor({ timeout: UI_TIMEOUT_MS });
    await row.getByTestId('reset-connection').click();
    assert.equal(await withTimeout(client.closed, 10_000, 'the client to close'), 'ECONNRESET');
  });

  test('opens without a token and then asks for one (the page itself needs no token)', async (t) => {
    const upstream = await startUpstream(t, echo);
    const cli = await startAdminCli(t, { web: { targets: [upstream.address] } }, 'tok');
    const page = await newPage(t);
    const response = await page.goto(`${cli.adminUrl}/`);
    assert.equal(response?.status(), 200);
    await page.getByTestId('token-form').waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
  });

  test('shows an error banner while the admin API cannot be reached', async (t) => {
    const upstream = await startUpstream(t, echo);
    const cli = await startAdminCli(t, { web: { targets: [upstream.address] } });
    const page = await newPage(t);
    await page.goto(`${cli.adminUrl}/`);
    await page.getByTestId('listener').first().waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await page.getByTestId('error-banner').isVisible(), false);
    cli.child.kill('SIGKILL');
    await cli.waitForExit(10_000);
    const banner = page.getByTestId('error-banner');
    await banner.waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
    assert.match((await banner.textContent()) ?? '', /Cannot reach the admin API/);
  });
});
