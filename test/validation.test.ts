/**
 * Options refused at the edge, through every entry point: a target listed twice in
 * one listener (library options, flags, config file, `proxy check`), and option keys
 * a JavaScript caller misspelt. Each refusal is one line naming where the problem is.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseArgv } from '../src/config/args.js';
import { parseConfigText } from '../src/config/file.js';
import { createProxy, type ProxyOptions } from '../src/index.js';
import { runCli } from './helpers/cli.js';

/** refusal runs `fn` and returns the message of the PROXY_ERR_INVALID_CONFIG it throws. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.equal((err as { code?: unknown }).code, 'PROXY_ERR_INVALID_CONFIG', String(err));
    const message = (err as Error).message;
    assert.ok(!message.includes('\n'), `one line: ${JSON.stringify(message)}`);
    return message;
  }
  assert.fail('expected the options to be refused');
}

// Library callers in JavaScript pass anything; the casts stand in for untyped code.
const loose = (options: unknown): ProxyOptions => options as ProxyOptions;

describe('a target listed twice in one listener', () => {
  test('is refused in library options, naming both positions', () => {
    assert.equal(
      refusal(() =>
        createProxy({ listen: 0, targets: ['127.0.0.1:9000', '127.0.0.1:9001', '127.0.0.1:9000'] }),
      ),
      'targets[2]: duplicate target 127.0.0.1:9000 (already targets[0])',
    );
    assert.equal(
      refusal(() =>
        createProxy({
          listeners: [
            { listen: 0, targets: ['127.0.0.1:1'] },
            { listen: 1, targets: [{ address: '[::1]:80', weight: 2 }, '[::1]:80'] },
          ],
        }),
      ),
      'listeners[1].targets[1]: duplicate target [::1]:80 (already targets[0])',
    );
  });

  test('is refused on reload, which keeps the running configuration', async (t) => {
    const proxy = createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9000'] });
    await proxy.listen();
    t.after(() => proxy.close({ graceful: false }));
    await assert.rejects(
      proxy.reload({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9000', '127.0.0.1:9000'] }),
      { code: 'PROXY_ERR_INVALID_CONFIG', message: /duplicate target 127\.0\.0\.1:9000/ },
    );
    assert.deepEqual(
      proxy.listenerInfo()[0]?.targets.map((t) => t.address),
      ['127.0.0.1:9000'],
    );
  });

  test('is allowed in different listeners', () => {
    createProxy({
      listeners: [
        { listen: 0, targets: ['127.0.0.1:9000'] },
        { listen: 1, targets: ['127.0.0.1:9000'] },
      ],
    });
  });

  test('is refused as flags, naming --target', () => {
    assert.equal(
      refusal(() =>
        parseArgv(['--listen', '0', '--target', '127.0.0.1:9000', '-t', '127.0.0.1:9000']),
      ),
      '--target: duplicate target 127.0.0.1:9000 (given twice)',
    );
  });

  test('is refused in a config file with the position of the second one', () => {
    const text = [
      'listeners:',
      '  - listen: 127.0.0.1:8080',
      '    targets:',
      '      - 127.0.0.1:9000',
      '      - 127.0.0.1:9000',
      '',
    ].join('\n');
    assert.equal(
      refusal(() => parseConfigText(text, 'proxy.yaml')),
      'proxy.yaml:5:9 listeners[0].targets[1]: duplicate target 127.0.0.1:9000 (already targets[0])',
    );
    const mapped = [
      'listeners:',
      '  - listen: 8080',
      '    targets:',
      '      - address: "[::1]:80"',
      '      - { address: "[::1]:80", weight: 3 }',
      '',
    ].join('\n');
    assert.equal(
      refusal(() => parseConfigText(mapped, 'proxy.yaml')),
      'proxy.yaml:5:20 listeners[0].targets[1].address: duplicate target [::1]:80 (already targets[0])',
    );
  });

  test('makes `proxy check` exit 2 with the one-line message', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'proxy-validation-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'proxy.yaml');
    await writeFile(
      file,
      'listeners:\n  - listen: 127.0.0.1:0\n    targets: [127.0.0.1:9000, 127.0.0.1:9000]\n',
    );
    // A Node start-up on a busy machine can take seconds: the bound is generous.
    const result = await runCli(t, ['check', '--config', file], 30_000);
    assert.equal(result.status, 2, result.stderr);
    const lines = result.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0] ?? '',
      /proxy\.yaml:3:31 listeners\[0\]\.targets\[1\]: duplicate target 127\.0\.0\.1:9000 \(already targets\[0\]\)$/,
    );
  });
});

describe('an unknown option key', () => {
  test('is refused at the top level, with the close match', () => {
    assert.equal(
      refusal(() => createProxy(loose({ listen: 0, target: ['127.0.0.1:9000'] }))),
      'unknown option target (did you mean targets?)',
    );
    assert.equal(
      refusal(() =>
        createProxy(loose({ listen: 0, targets: ['127.0.0.1:9000'], idleTimeout: 1000 })),
      ),
      'unknown option idleTimeout (did you mean idleTimeoutMs?)',
    );
    assert.equal(
      refusal(() => createProxy(loose({ listen: 0, targets: ['127.0.0.1:9000'], compress: true }))),
      'unknown option compress',
    );
  });

  test('is refused next to listeners, and inside listeners[i]', () => {
    const listeners = [{ listen: 0, targets: ['127.0.0.1:9000'] }];
    assert.equal(
      refusal(() => createProxy(loose({ listeners, listen: 0 }))),
      'unknown option listen',
    );
    assert.equal(
      refusal(() => createProxy(loose({ listener: listeners }))),
      'unknown option listener (did you mean listen?)',
    );
    assert.equal(
      refusal(() =>
        createProxy(
          loose({ listeners: [...listeners, { listen: 1, targets: ['a:1'], maxConnection: 5 }] }),
        ),
      ),
      'listeners[1]: unknown option maxConnection (did you mean maxConnections?)',
    );
  });

  test('is refused by reload too', async (t) => {
    const proxy = createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9000'] });
    await proxy.listen();
    t.after(() => proxy.close({ graceful: false }));
    await assert.rejects(proxy.reload(loose({ listen: '127.0.0.1:0', target: ['a:1'] })), {
      code: 'PROXY_ERR_INVALID_CONFIG',
      message: 'unknown option target (did you mean targets?)',
    });
  });

  test('is not reported for the options a caller may leave undefined, or for log', () => {
    createProxy({
      name: 'web',
      listen: 0,
      targets: ['127.0.0.1:9000'],
      idleTimeoutMs: undefined,
      maxConnections: undefined,
      log: { level: 'silent' },
    });
  });
});
