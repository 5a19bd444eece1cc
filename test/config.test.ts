/**
 * The pure configuration edge: durations, addresses, the validated Config and the
 * command line. Every accepted form has an example, every error names where it came
 * from, and fast-check feeds each parser arbitrary input to show it only ever
 * returns a value or throws its own error type.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { AddressError, formatAddress, parseAddress } from '../src/config/address.js';
import { parseArgv } from '../src/config/args.js';
import { DEFAULTS, resolveConfig, resolveListener } from '../src/config/config.js';
import { DurationError, formatDuration, parseDuration } from '../src/config/duration.js';
import { ProxyError } from '../src/errors.js';

const RUNS = { numRuns: 200 };

/** anyString covers every code unit, including control characters and line breaks. */
const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'binary-ascii' }),
);

function isOneLine(message: string): boolean {
  return !/[\r\n]/.test(message);
}

/** assertConfigError checks that `fn` throws a one-line PROXY_ERR_INVALID_CONFIG ProxyError. */
function assertConfigError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProxyError, `expected a ProxyError, got ${String(err)}`);
    assert.equal(err.code, 'PROXY_ERR_INVALID_CONFIG');
    assert.ok(isOneLine(err.message), `one line: ${JSON.stringify(err.message)}`);
    assert.match(err.message, message);
    return true;
  });
}

describe('parseDuration', () => {
  const accepted: [string, number][] = [
    ['1500ms', 1500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['250', 250],
    ['0', 0],
    ['0s', 0],
    ['0ms', 0],
    ['007s', 7000],
    ['9007199254740991', Number.MAX_SAFE_INTEGER],
  ];
  for (const [text, ms] of accepted) {
    test(`reads ${JSON.stringify(text)} as ${ms} ms`, () => {
      assert.equal(parseDuration(text), ms);
    });
  }

  const rejected: [string, RegExp][] = [
    ['', /expected a whole number with an optional unit/],
    ['1.5s', /got "1\.5s"/],
    ['-1', /got "-1"/],
    ['5d', /got "5d"/],
    ['5S', /got "5S"/],
    ['1 s', /got "1 s"/],
    [' 1s', /got " 1s"/],
    ['1s ', /got "1s "/],
    ['s', /got "s"/],
    ['1e3', /got "1e3"/],
    ['1h30m', /got "1h30m"/],
    ['9007199254740992', /too large/],
    ['9007199254740991s', /too large/],
    ['9'.repeat(400), /too large/],
  ];
  for (const [text, message] of rejected) {
    test(`rejects ${JSON.stringify(text.length > 20 ? `${text.slice(0, 20)}…` : text)} with a DurationError`, () => {
      assert.throws(
        () => parseDuration(text),
        (err: unknown) => {
          assert.ok(err instanceof DurationError);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }

  test('formats milliseconds in the largest unit that divides them', () => {
    assert.equal(formatDuration(0), '0');
    assert.equal(formatDuration(1500), '1500ms');
    assert.equal(formatDuration(30_000), '30s');
    assert.equal(formatDuration(300_000), '5m');
    assert.equal(formatDuration(7_200_000), '2h');
    assert.equal(formatDuration(90_000), '90s');
    assert.equal(formatDuration(5_400_000), '90m');
  });

  test('reads back what formatDuration writes, for any safe non-negative whole ms', () => {
    const ms = fc.oneof(
      fc.maxSafeNat(),
      fc.nat({ max: 1000 }).map((n) => n * 3_600_000),
      fc.nat({ max: 1000 }).map((n) => n * 60_000),
      fc.nat({ max: 1000 }).map((n) => n * 1000),
    );
    fc.assert(
      fc.property(ms, (n) => {
        assert.equal(parseDuration(formatDuration(n)), n);
      }),
      RUNS,
    );
  });

  test('returns a safe whole number or throws DurationError for any string', () => {
    const text = fc.oneof(
      anyString,
      fc
        .tuple(fc.stringMatching(/^\d{0,25}$/), fc.constantFrom('', 'ms', 's', 'm', 'h', 'x'))
        .map(([digits, unit]) => digits + unit),
    );
    fc.assert(
      fc.property(text, (input) => {
        let ms: number;
        try {
          ms = parseDuration(input);
        } catch (err) {
          assert.ok(err instanceof DurationError, `unexpected ${String(err)}`);
          return;
        }
        assert.ok(Number.isSafeInteger(ms) && ms >= 0, `got ${ms}`);
      }),
      RUNS,
    );
  });
});

describe('parseAddress', () => {
  test('reads HOST:PORT with a name, an IPv4 address or a trailing-dot name', () => {
    assert.deepEqual(parseAddress('example.com:80'), { host: 'example.com', port: 80 });
    assert.deepEqual(parseAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseAddress('localhost:65535'), { host: 'localhost', port: 65535 });
    assert.deepEqual(parseAddress('db-1.internal.:5432'), { host: 'db-1.internal.', port: 5432 });
  });

  test('reads [IPv6]:PORT without the brackets in the host', () => {
    assert.deepEqual(parseAddress('[::1]:8080'), { host: '::1', port: 8080 });
    assert.deepEqual(parseAddress('[::]:1'), { host: '::', port: 1 });
    assert.deepEqual(parseAddress('[2001:db8::ff00:42:8329]:443'), {
      host: '2001:db8::ff00:42:8329',
      port: 443,
    });
    assert.deepEqual(parseAddress('[::ffff:10.0.0.1]:80'), { host: '::ffff:10.0.0.1', port: 80 });
  });

  test('reads a bare PORT as every interface only when allowed', () => {
    assert.deepEqual(parseAddress('8080', { allowBarePort: true }), {
      host: undefined,
      port: 8080,
    });
    assert.throws(() => parseAddress('8080'), AddressError);
  });

  test('accepts port 0 only when allowed', () => {
    assert.deepEqual(parseAddress('127.0.0.1:0', { allowPortZero: true }), {
      host: '127.0.0.1',
      port: 0,
    });
    assert.deepEqual(parseAddress('0', { allowBarePort: true, allowPortZero: true }), {
      host: undefined,
      port: 0,
    });
    assert.throws(() => parseAddress('127.0.0.1:0'), /port must be 1 to 65535, got 0/);
    assert.throws(() => parseAddress('0', { allowBarePort: true }), /port must be 1 to 65535/);
  });

  const rejected: [string, RegExp][] = [
    ['::1:8080', /IPv6 address needs brackets/],
    ['fe80::1:80', /IPv6 address needs brackets/],
    ['[::1]8080', /expected \[IPv6\]:PORT/],
    ['[::1', /expected \[IPv6\]:PORT/],
    ['[::1]:', /expected a port number, got ""/],
    ['[127.0.0.1]:80', /is not an IPv6 address/],
    ['[nope]:80', /"nope" is not an IPv6 address/],
    ['localhost', /expected HOST:PORT/],
    ['', /expected HOST:PORT/],
    [':80', /"" is not a host name/],
    ['bad_host:80', /"bad_host" is not a host name/],
    ['-lead.example:80', /is not a host name/],
    ['example.com:', /expected a port number, got ""/],
    ['example.com:http', /expected a port number, got "http"/],
    ['example.com:-1', /expected a port number/],
    ['example.com:65536', /port must be 1 to 65535, got 65536/],
    ['example.com:99999', /port must be 1 to 65535, got 99999/],
    ['example.com:123456', /expected a port number/],
    ['[::1]:70000', /port must be 1 to 65535, got 70000/],
  ];
  for (const [text, message] of rejected) {
    test(`rejects ${JSON.stringify(text)} with an AddressError`, () => {
      assert.throws(
        () => parseAddress(text),
        (err: unknown) => {
          assert.ok(err instanceof AddressError);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }

  test('rejects a bare port out of range even where a bare port is allowed', () => {
    assert.throws(
      () => parseAddress('65536', { allowBarePort: true, allowPortZero: true }),
      /port must be 0 to 65535, got 65536/,
    );
  });

  test('formats IPv4, IPv6 and every-interface addresses', () => {
    assert.equal(formatAddress('127.0.0.1', 80), '127.0.0.1:80');
    assert.equal(formatAddress('::1', 80), '[::1]:80');
    assert.equal(formatAddress(undefined, 80), '80');
  });

  const port = fc.integer({ min: 1, max: 65535 });
  const anyPort = fc.integer({ min: 0, max: 65535 });

  test('reads back what formatAddress writes for any IPv4 or IPv6 address and port', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), port, (host, p) => {
        assert.deepEqual(parseAddress(formatAddress(host, p)), { host, port: p });
      }),
      RUNS,
    );
  });

  test('reads back a listen address with port 0 or no host', () => {
    fc.assert(
      fc.property(fc.option(fc.oneof(fc.ipV4(), fc.ipV6())), anyPort, (maybeHost, p) => {
        const host = maybeHost ?? undefined;
        const text = formatAddress(host, p);
        assert.deepEqual(parseAddress(text, { allowBarePort: true, allowPortZero: true }), {
          host,
          port: p,
        });
      }),
      RUNS,
    );
  });

  test('reads back what formatAddress writes for any domain name', () => {
    fc.assert(
      fc.property(fc.domain(), port, (host, p) => {
        assert.deepEqual(parseAddress(formatAddress(host, p)), { host, port: p });
      }),
      RUNS,
    );
  });

  test('returns an address or throws AddressError for any string', () => {
    const text = fc.oneof(
      anyString,
      fc
        .tuple(
          fc.oneof(
            anyString,
            fc.ipV4(),
            fc.ipV6().map((h) => `[${h}]`),
          ),
          anyString,
        )
        .map(([host, p]) => `${host}:${p}`),
    );
    fc.assert(
      fc.property(text, fc.boolean(), fc.boolean(), (input, allowBarePort, allowPortZero) => {
        let address: ReturnType<typeof parseAddress>;
        try {
          address = parseAddress(input, { allowBarePort, allowPortZero });
        } catch (err) {
          assert.ok(err instanceof AddressError, `unexpected ${String(err)}`);
          return;
        }
        if (address.path !== undefined) {
          assert.ok(input.startsWith('unix:') && address.path.length > 0);
          return;
        }
        assert.ok(Number.isInteger(address.port));
        assert.ok(address.port >= (allowPortZero ? 0 : 1) && address.port <= 65535);
        if (address.host === undefined) assert.ok(allowBarePort);
      }),
      RUNS,
    );
  });
});

describe('resolveListener and resolveConfig', () => {
  test('fills in the defaults and names the listener after its listen address', () => {
    const l = resolveListener({ listen: '127.0.0.1:8080', targets: ['127.0.0.1:9000'] }, '');
    assert.equal(l.name, '127.0.0.1:8080');
    assert.deepEqual(l.listen, { host: '127.0.0.1', port: 8080 });
    assert.equal(l.idleTimeoutMs, DEFAULTS.idleTimeoutMs);
    assert.equal(l.halfCloseTimeoutMs, DEFAULTS.halfCloseTimeoutMs);
    assert.equal(l.connectTimeoutMs, 10_000);
    assert.equal(l.shutdownTimeoutMs, 30_000);
    assert.equal(l.maxConnections, Number.POSITIVE_INFINITY);
    assert.ok(Object.isFrozen(l));
    assert.ok(Object.isFrozen(l.listen));
    assert.ok(Object.isFrozen(l.targets));
  });

  test('accepts a port number, a bare port string and port 0 for listen', () => {
    assert.deepEqual(resolveListener({ listen: 8080, targets: ['a:1'] }, '').listen, {
      host: undefined,
      port: 8080,
    });
    assert.deepEqual(resolveListener({ listen: '0', targets: ['a:1'] }, '').listen, {
      host: undefined,
      port: 0,
    });
    assert.deepEqual(resolveListener({ listen: '[::1]:0', targets: ['a:1'] }, '').listen, {
      host: '::1',
      port: 0,
    });
    assert.equal(resolveListener({ listen: 0, targets: ['a:1'] }, '').name, '0');
  });

  test('resolves targets with their host, port and printable address', () => {
    const { targets } = resolveListener(
      { listen: 0, targets: ['example.com:80', '[::1]:9000', '10.0.0.2:5432'] },
      '',
    );
    assert.deepEqual(
      targets.map((t) => [t.host, t.port, t.address]),
      [
        ['example.com', 80, 'example.com:80'],
        ['::1', 9000, '[::1]:9000'],
        ['10.0.0.2', 5432, '10.0.0.2:5432'],
      ],
    );
  });

  test('keeps explicit durations, a connection limit and a name', () => {
    const l = resolveListener(
      {
        name: 'db',
        listen: 0,
        targets: ['a:1'],
        idleTimeoutMs: 0,
        halfCloseTimeoutMs: 5,
        connectTimeoutMs: 1,
        shutdownTimeoutMs: Number.MAX_SAFE_INTEGER,
        maxConnections: 1,
      },
      '',
    );
    assert.equal(l.name, 'db');
    assert.equal(l.idleTimeoutMs, 0);
    assert.equal(l.halfCloseTimeoutMs, 5);
    assert.equal(l.connectTimeoutMs, 1);
    assert.equal(l.shutdownTimeoutMs, Number.MAX_SAFE_INTEGER);
    assert.equal(l.maxConnections, 1);
  });

  // Library callers may pass anything; the casts stand in for untyped JavaScript.
  type Loose = Parameters<typeof resolveListener>[0];
  const rejected: [string, Record<string, unknown>, RegExp][] = [
    ['a listen value that is not a string or number', { listen: null }, /^listen: /],
    ['a listen address without a port', { listen: 'localhost' }, /^listen: expected HOST:PORT/],
    ['an IPv6 listen address without brackets', { listen: '::1:80' }, /^listen: .*brackets/],
    ['a listen port out of range', { listen: 65536 }, /^listen: port must be 0 to 65535/],
    ['an empty target list', { targets: [] }, /^targets: expected at least one target/],
    ['a missing target list', { targets: undefined }, /^targets: /],
    ['a target that is not a string', { targets: [8080] }, /^targets\[0\]: expected HOST:PORT/],
    [
      'a target with a bare port',
      { targets: ['a:1', '9000'] },
      /^targets\[1\]: expected HOST:PORT/,
    ],
    ['a target with port 0', { targets: ['a:0'] }, /^targets\[0\]: port must be 1 to 65535/],
    ['an IPv6 target without brackets', { targets: ['::1:80'] }, /^targets\[0\]: .*brackets/],
    ['a negative idle timeout', { idleTimeoutMs: -1 }, /^idleTimeoutMs: expected a whole number/],
    ['a fractional connect timeout', { connectTimeoutMs: 1.5 }, /^connectTimeoutMs: .*got 1\.5/],
    ['a string half-close timeout', { halfCloseTimeoutMs: '30s' }, /^halfCloseTimeoutMs: /],
    ['a NaN shutdown timeout', { shutdownTimeoutMs: Number.NaN }, /^shutdownTimeoutMs: .*NaN/],
    [
      'zero max connections',
      { maxConnections: 0 },
      /^maxConnections: expected a whole number >= 1/,
    ],
    ['fractional max connections', { maxConnections: 2.5 }, /^maxConnections: /],
    ['an empty name', { name: '' }, /^name: expected a non-empty string/],
  ];
  test('accepts an infinite max connections as no limit', () => {
    const config = resolveListener(
      { listen: '127.0.0.1:0', targets: ['127.0.0.1:1'], maxConnections: Number.POSITIVE_INFINITY },
      '',
    );
    assert.equal(config.maxConnections, Number.POSITIVE_INFINITY);
  });
  for (const [what, override, message] of rejected) {
    test(`rejects ${what}, naming the option`, () => {
      const options = { listen: 0, targets: ['a:1'], ...override } as unknown as Loose;
      assertConfigError(() => resolveListener(options, ''), message);
    });
  }

  test('prefixes every message with the given location', () => {
    assertConfigError(
      () => resolveListener({ listen: 0, targets: ['a:1'], idleTimeoutMs: -1 }, 'proxy.json: '),
      /^proxy\.json: idleTimeoutMs: /,
    );
  });

  test('resolves a list of listeners into one frozen Config', () => {
    const config = resolveConfig([
      { listen: 8080, targets: ['a:1'] },
      { name: 'other', listen: '127.0.0.1:8081', targets: ['b:2'] },
    ]);
    assert.deepEqual(
      config.listeners.map((l) => l.name),
      ['8080', 'other'],
    );
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.listeners));
  });

  test('rejects an empty list of listeners', () => {
    assertConfigError(() => resolveConfig([]), /^listeners: expected at least one listener/);
  });

  test('names the listener by index when there are several', () => {
    assertConfigError(
      () =>
        resolveConfig([
          { listen: 8080, targets: ['a:1'] },
          { listen: 8081, targets: [] },
        ]),
      /^listeners\[1\]\.targets: /,
    );
  });

  test('does not prefix messages when there is a single listener', () => {
    assertConfigError(() => resolveConfig([{ listen: 8080, targets: [] }]), /^targets: /);
  });

  test('rejects two listeners with the same name', () => {
    assertConfigError(
      () =>
        resolveConfig([
          { listen: 8080, targets: ['a:1'] },
          { name: '8080', listen: 8081, targets: ['b:2'] },
        ]),
      /^listeners\[1\]\.name: duplicate listener name 8080/,
    );
  });
});

describe('parseArgv', () => {
  const base = ['--listen', '127.0.0.1:8080', '--target', '127.0.0.1:9000'];

  function run(argv: readonly string[]) {
    const command = parseArgv(argv);
    assert.equal(command.kind, 'run');
    if (command.kind !== 'run') throw new Error('unreachable');
    return command;
  }

  test('reads the minimal command with the default log level and format', () => {
    const command = run(base);
    assert.equal(command.listener.listen, '127.0.0.1:8080');
    assert.deepEqual(command.listener.targets, ['127.0.0.1:9000']);
    assert.equal(command.logLevel, 'info');
    assert.equal(command.logFormat, 'text');
    assert.equal(command.listener.idleTimeoutMs, undefined);
    assert.equal(command.listener.maxConnections, undefined);
  });

  test('reads short flags, repeated targets, = values and a bare listen port', () => {
    const command = run(['-l', '8080', '-t', 'a:1', '--target=[::1]:2', '-t', 'b.example:3']);
    assert.equal(command.listener.listen, '8080');
    assert.deepEqual(command.listener.targets, ['a:1', '[::1]:2', 'b.example:3']);
  });

  test('reads an IPv6 listen address and port 0', () => {
    assert.equal(run(['--listen', '[::1]:8080', '-t', 'a:1']).listener.listen, '[::1]:8080');
    assert.equal(run(['--listen', '0', '-t', 'a:1']).listener.listen, '0');
    assert.equal(run(['--listen', '127.0.0.1:0', '-t', 'a:1']).listener.listen, '127.0.0.1:0');
  });

  test('reads every duration flag in milliseconds', () => {
    const { listener } = run([
      ...base,
      '--idle-timeout',
      '1500ms',
      '--half-close-timeout',
      '30s',
      '--connect-timeout',
      '250',
      '--shutdown-timeout',
      '2h',
    ]);
    assert.equal(listener.idleTimeoutMs, 1500);
    assert.equal(listener.halfCloseTimeoutMs, 30_000);
    assert.equal(listener.connectTimeoutMs, 250);
    assert.equal(listener.shutdownTimeoutMs, 7_200_000);
    assert.equal(run([...base, '--idle-timeout=5m']).listener.idleTimeoutMs, 300_000);
    assert.equal(run([...base, '--idle-timeout', '0']).listener.idleTimeoutMs, 0);
  });

  test('reads --max-connections, --log-level and --log-format', () => {
    const command = run([
      ...base,
      '--max-connections',
      '100',
      '--log-level',
      'trace',
      '--log-format',
      'json',
    ]);
    assert.equal(command.listener.maxConnections, 100);
    assert.equal(command.logLevel, 'trace');
    assert.equal(command.logFormat, 'json');
    for (const level of ['error', 'warn', 'info', 'debug', 'trace']) {
      assert.equal(run([...base, '--log-level', level]).logLevel, level);
    }
  });

  test('lets the last of a repeated single-value flag win', () => {
    assert.equal(run([...base, '--listen', '9090']).listener.listen, '9090');
  });

  test('returns help or version before validating anything else', () => {
    assert.deepEqual(parseArgv(['--help']), { kind: 'help' });
    assert.deepEqual(parseArgv(['-h', '--listen', 'nonsense']), { kind: 'help' });
    assert.deepEqual(parseArgv(['--version']), { kind: 'version' });
    assert.deepEqual(parseArgv(['-V']), { kind: 'version' });
  });

  const rejected: [string, string[], RegExp][] = [
    ['an unknown long option', [...base, '--nope'], /^unknown option --nope\b/],
    ['an unknown short option', [...base, '-x'], /^unknown option -x\b/],
    ['a missing --listen', ['--target', 'a:1'], /^--listen is required/],
    ['no arguments at all', [], /^--listen is required/],
    ['a missing --target', ['--listen', '8080'], /^--target is required/],
    ['--listen without a value', ['--target', 'a:1', '--listen'], /^--listen needs a value$/],
    ['--target without a value', ['--listen', '8080', '--target'], /^--target needs a value$/],
    [
      '--idle-timeout without a value',
      [...base, '--idle-timeout'],
      /^--idle-timeout needs a value$/,
    ],
    ['a value for --help', ['--help=yes'], /^--help takes no value$/],
    ['a positional argument', [...base, 'extra'], /^unexpected argument "extra"/],
    [
      'a positional argument after --',
      [...base, '--', '--listen'],
      /^unexpected argument "--listen"/,
    ],
    ['--max-connections 0', [...base, '--max-connections', '0'], /^--max-connections: .*got "0"$/],
    ['--max-connections -1', [...base, '--max-connections=-1'], /^--max-connections: .*got "-1"$/],
    ['--max-connections 1.5', [...base, '--max-connections', '1.5'], /^--max-connections: /],
    ['--max-connections ten', [...base, '--max-connections', 'ten'], /^--max-connections: /],
    [
      'an empty --max-connections',
      [...base, '--max-connections='],
      /^--max-connections: .*got ""$/,
    ],
    [
      'a --max-connections beyond 2^53',
      [...base, '--max-connections', '9'.repeat(20)],
      /^--max-connections: /,
    ],
    [
      '--log-level verbose',
      [...base, '--log-level', 'verbose'],
      /^--log-level: expected one of error, warn, info, debug, trace, got "verbose"$/,
    ],
    ['--log-level silent', [...base, '--log-level', 'silent'], /^--log-level: .*got "silent"$/],
    [
      '--log-format xml',
      [...base, '--log-format', 'xml'],
      /^--log-format: expected one of text, json, got "xml"$/,
    ],
    [
      'an IPv6 --listen without brackets',
      ['--listen', '::1:8080', '-t', 'a:1'],
      /^--listen: an IPv6 address needs brackets/,
    ],
    [
      'an IPv6 --target without brackets',
      ['--listen', '8080', '-t', '::1:80'],
      /^--target: an IPv6 address needs brackets/,
    ],
    [
      'a --listen port out of range',
      ['--listen', '70000', '-t', 'a:1'],
      /^--listen: port must be 0 to 65535, got 70000$/,
    ],
    [
      'a --target port out of range',
      ['--listen', '8080', '-t', 'a:65536'],
      /^--target: port must be 1 to 65535, got 65536$/,
    ],
    [
      'a --target with port 0',
      ['--listen', '8080', '-t', 'a:0'],
      /^--target: port must be 1 to 65535, got 0$/,
    ],
    [
      'a --target with a bare port',
      ['--listen', '8080', '-t', '9000'],
      /^--target: expected HOST:PORT, got "9000"$/,
    ],
    [
      'a bad second --target',
      ['--listen', '8080', '-t', 'a:1', '-t', 'b'],
      /^--target: expected HOST:PORT, got "b"$/,
    ],
    [
      'a --listen host that is not a name',
      ['--listen', 'a_b:80', '-t', 'a:1'],
      /^--listen: "a_b" is not a host name/,
    ],
  ];
  for (const flag of [
    '--idle-timeout',
    '--half-close-timeout',
    '--connect-timeout',
    '--shutdown-timeout',
  ]) {
    rejected.push([
      `a bad ${flag}`,
      [...base, flag, '5 minutes'],
      new RegExp(`^${flag}: expected a whole number.*got "5 minutes"$`),
    ]);
    rejected.push([
      `a too large ${flag}`,
      [...base, `${flag}=9007199254740992`],
      new RegExp(`^${flag}: duration .* is too large$`),
    ]);
  }
  for (const [what, argv, message] of rejected) {
    test(`rejects ${what} with a one-line message naming the flag`, () => {
      assertConfigError(() => parseArgv(argv), message);
    });
  }

  test('keeps the message on one line for an unknown option containing a line break', () => {
    assertConfigError(() => parseArgv(['--a\nb']), /^unknown option /);
  });

  test('says --listen needs a value when the next argument is another flag', () => {
    assertConfigError(() => parseArgv(['--listen', '--target', 'a:1']), /^--listen needs a value/);
  });

  const argvWord = fc.oneof(
    fc.constantFrom(
      '--listen',
      '-l',
      '--target',
      '-t',
      '--idle-timeout',
      '--half-close-timeout',
      '--connect-timeout',
      '--shutdown-timeout',
      '--max-connections',
      '--log-level',
      '--log-format',
      '--help',
      '-h',
      '--version',
      '-V',
      '--',
      '8080',
      '127.0.0.1:9000',
      '[::1]:0',
      '30s',
      'json',
      'debug',
    ),
    anyString,
    anyString.map((s) => `--${s}`),
    anyString.map((s) => `-${s}`),
  );

  test('returns a command or throws a PROXY_ERR_INVALID_CONFIG ProxyError for any argv', () => {
    fc.assert(
      fc.property(fc.array(argvWord, { maxLength: 12 }), (argv) => {
        try {
          const command = parseArgv(argv);
          assert.ok(['run', 'config', 'check', 'help', 'version'].includes(command.kind));
        } catch (err) {
          assert.ok(err instanceof ProxyError, `unexpected ${String(err)}`);
          assert.equal(err.code, 'PROXY_ERR_INVALID_CONFIG');
        }
      }),
      RUNS,
    );
  });

  test('throws a one-line message for any argv whose words have no line breaks', () => {
    const word = argvWord;
    fc.assert(
      fc.property(fc.array(word, { maxLength: 12 }), (argv) => {
        try {
          parseArgv(argv);
        } catch (err) {
          assert.ok(err instanceof ProxyError);
          assert.ok(isOneLine(err.message), `one line: ${JSON.stringify(err.message)}`);
        }
      }),
      RUNS,
    );
  });

  test('keeps line breaks out of messages that quote a bad flag value', () => {
    const valueFlag = fc.constantFrom(
      '--listen',
      '--target',
      '--idle-timeout',
      '--max-connections',
      '--log-level',
      '--log-format',
    );
    fc.assert(
      fc.property(valueFlag, anyString, (flag, value) => {
        const argv = ['--listen', '8080', '--target', 'a:1', `${flag}=${value}`];
        try {
          parseArgv(argv);
        } catch (err) {
          assert.ok(err instanceof ProxyError);
          assert.ok(err.message.startsWith(`${flag}`), err.message);
          assert.ok(isOneLine(err.message), `one line: ${JSON.stringify(err.message)}`);
        }
      }),
      RUNS,
    );
  });
});

describe('Unix domain socket addresses', () => {
  test('parses unix:/path for listen and target, and formats it back', () => {
    assert.deepEqual(parseAddress('unix:/run/app.sock'), { path: '/run/app.sock' });
    const config = resolveListener(
      { listen: 'unix:/tmp/in.sock', targets: ['unix:/tmp/out.sock', '127.0.0.1:1'] },
      '',
    );
    assert.equal(config.listen.path, '/tmp/in.sock');
    assert.equal(config.targets[0]?.address, 'unix:/tmp/out.sock');
    assert.equal(config.targets[0]?.path, '/tmp/out.sock');
    assert.equal(config.targets[1]?.path, undefined);
  });

  test('refuses an empty unix path', () => {
    assert.throws(() => parseAddress('unix:'), AddressError);
  });
});
