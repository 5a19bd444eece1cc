/**
 * The admin server's guards against a web page, in a real browser (headless Chromium
 * through playwright-core, as test/e2e/status-page.test.ts): a page on another site
 * cannot drain a target with a cross-site POST, and a DNS-rebinding page (its name
 * resolved to 127.0.0.1, by Chromium's --host-resolver-rules) cannot read the API.
 * The status page itself keeps working: status-page.test.ts drives it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, type TestContext, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { spawnCli } from '../helpers/cli.js';
import { echo, startUpstream } from '../helpers/net.js';

const CHROMIUM_PATH = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM_PATH);
const SKIP =
  !HAVE_CHROMIUM && !process.env['CI']
    ? `${CHROMIUM_PATH} is missing (apt-get install chromium; .ci/run installs it in CI)`
    : false;

let browser: Browser | undefined;

async function newPage(t: TestContext): Promise<Page> {
  if (browser === undefined) throw new Error('the browser did not start');
  const context = await browser.newContext();
  t.after(() => context.close());
  return context.newPage();
}

/** startAdmin runs the CLI with listener `web` in front of an echo upstream and an admin server. */
async function startAdmin(t: TestContext) {
  const upstream = await startUpstream(t, echo);
  const cli = spawnCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
    '--admin',
    '127.0.0.1:0',
    '--log-format',
    'json',
  ]);
  const record = await cli.waitForRecord((r) => r.msg === 'admin listening', 10_000, 'the admin');
  const adminUrl = `http://${record.address}`;
  const targetState = async (): Promise<string> => {
    const listeners = (await (await fetch(`${adminUrl}/api/listeners`)).json()) as {
      targets: { address: string; state: string }[];
    }[];
    return listeners[0]?.targets.find((x) => x.address === upstream.address)?.state ?? '?';
  };
  const drainUrl = `${adminUrl}/api/listeners/${encodeURIComponent('127.0.0.1:0')}/targets/${encodeURIComponent(upstream.address)}/drain`;
  return {
    adminUrl,
    port: Number(/:(\d+)$/.exec(record.address ?? '')?.[1]),
    drainUrl,
    targetState,
  };
}

describe('the admin server against a web page', { skip: SKIP }, () => {
  before(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`${CHROMIUM_PATH} is missing; CI must install it`);
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        // evil.example is "resolved" to 127.0.0.1: a DNS-rebinding attacker's name.
        '--host-resolver-rules=MAP evil.example 127.0.0.1',
      ],
    });
  });
  after(() => browser?.close());

  test('a page on another site cannot drain a target with a cross-site POST', async (t) => {
    const admin = await startAdmin(t);
    assert.equal(await admin.targetState(), 'up');
    // The attacker's page, on its own origin (http://evil.example:PORT).
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<!doctype html><title>evil</title>');
    });
    evil.listen(0, '127.0.0.1');
    await new Promise((resolve) => evil.once('listening', resolve));
    t.after(() => evil.close());
    const page = await newPage(t);
    await page.goto(`http://evil.example:${(evil.address() as AddressInfo).port}/`);
    // A "simple" request: no preflight, the answer opaque, but it is sent.
    await page.evaluate(async (url) => {
      await fetch(url, {
        method: 'POST',
        mode: 'no-cors',
        headers: { 'Content-Type': 'text/plain' },
        body: 'x',
      }).catch(() => {});
    }, admin.drainUrl);
    assert.equal(await admin.targetState(), 'up');
    // The same request without a browser (curl) still drains it.
    assert.equal((await fetch(admin.drainUrl, { method: 'POST' })).status, 200);
    assert.equal(await admin.targetState(), 'drained');
  });

  test('a DNS-rebinding page (evil.example resolved to 127.0.0.1) cannot read the API', async (t) => {
    const admin = await startAdmin(t);
    const page = await newPage(t);
    const rebound = await page.goto(`http://evil.example:${admin.port}/api/connections`);
    assert.equal(rebound?.status(), 403);
    const own = await page.goto(`${admin.adminUrl}/api/connections`);
    assert.equal(own?.status(), 200);
  });
});
