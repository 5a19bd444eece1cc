/**
 * SNI names, routes and certificate choice (src/tls/names.ts, routes.ts,
 * certificates.ts): exact names before one-label wildcards, any case; the routes
 * list's one-line errors; certificates read with node:crypto, cross-checked against
 * X509Certificate.checkHost.
 */
import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import {
  CertificateChooser,
  certificateNames,
  sniCallback,
  subjectAltDnsNames,
} from '../src/tls/certificates.js';
import { checkNamePattern, NameTable } from '../src/tls/names.js';
import { checkRoutes, type SniRoute, SniRouter } from '../src/tls/routes.js';
import { withTimeout } from './helpers/cli.js';
import { makeCertificate, tempDir } from './helpers/tls.js';

describe('NameTable and checkNamePattern', () => {
  const table = new NameTable<string>();
  table.add('*.example.com', 'wild');
  table.add('A.Example.com', 'a');
  table.add('*.b.example.com', 'wild-b');

  for (const [name, want] of [
    ['a.example.com', 'a'],
    ['A.EXAMPLE.COM', 'a'],
    ['a.example.com.', 'a'],
    ['x.example.com', 'wild'],
    ['X-1.Example.Com', 'wild'],
    ['example.com', undefined],
    ['a.b.example.com', 'wild-b'],
    ['a.c.example.com', undefined],
    ['b.example.com', 'wild'],
    ['.example.com', undefined],
    ['example.org', undefined],
    ['xexample.com', undefined],
  ] as const) {
    test(`${JSON.stringify(name)} → ${String(want)}`, () => {
      assert.equal(table.lookup(name), want);
    });
  }

  test('an exact name wins over a wildcard added before it; a pattern is added once', () => {
    const t = new NameTable<number>();
    assert.equal(t.add('*.example.com', 1), true);
    assert.equal(t.add('a.example.com', 2), true);
    assert.equal(t.add('A.EXAMPLE.COM', 3), false);
    assert.equal(t.lookup('a.example.com'), 2);
  });

  test('accepts host names and *.name; refuses other wildcards, spaces, non-ASCII', () => {
    for (const good of ['a.example.com', '*.example.com', 'localhost', '*.x', 'A-1.b_c.Example.']) {
      assert.equal(checkNamePattern(good), null, good);
    }
    for (const [bad, why] of [
      ['a.*.com', /wildcard must be a whole first label/],
      ['*a.example.com', /wildcard/],
      ['a*.example.com', /wildcard/],
      ['**.example.com', /wildcard/],
      ['*', /wildcard|not a host name/],
      ['*.', /wildcard|not a host name/],
      ['', /not a host name/],
      ['a b.com', /ASCII host name/],
      ['bücher.example', /xn--/],
      ['a..example.com', /not a host name/],
      ['-a.example.com', /not a host name/],
      [`${'a'.repeat(64)}.com`, /not a host name/],
    ] as const) {
      assert.match(checkNamePattern(bad) ?? 'null', why, bad);
    }
  });

  test('a wildcard matches exactly the names with one more label (property)', () => {
    const label = fc.stringMatching(/^[a-z0-9]{1,8}$/);
    fc.assert(
      fc.property(
        fc.array(label, { minLength: 1, maxLength: 4 }),
        fc.array(label, { maxLength: 3 }),
        (base, extra) => {
          const t = new NameTable<true>();
          t.add(`*.${base.join('.')}`, true);
          const name = [...extra, ...base].join('.');
          assert.equal(t.lookup(name) === true, extra.length === 1, name);
        },
      ),
    );
  });
});

describe('checkRoutes', () => {
  const t = ['127.0.0.1:1'];
  for (const [routes, want] of [
    [[], /^routes: expected at least one route/],
    [
      [{ sni: 'a.example.com', targets: t }],
      /^routes\[0\]: the last route is the default and has no sni/,
    ],
    [
      [{ targets: t }, { sni: 'a.example.com', targets: t }, { targets: t }],
      /^routes\[0\]: a route without sni is the default and must come last/,
    ],
    [
      [{ sni: 'a.*.com', targets: t }, { targets: t }],
      /^routes\[0\]\.sni: "a\.\*\.com": a wildcard/,
    ],
    [
      [{ sni: 'a.example.com', targets: t }, { sni: 'A.example.com.', targets: t }, { targets: t }],
      /^routes\[1\]\.sni: "A\.example\.com\." is already the name of routes\[0\]/,
    ],
    [
      [{ sni: 'a.example.com', targets: [] }, { targets: t }],
      /^routes\[0\]\.targets: expected at least one target/,
    ],
    [[{ targets: [] }], /^routes\[0\]\.targets/],
  ] as [SniRoute<string>[], RegExp][]) {
    test(`refuses ${JSON.stringify(routes.map((r) => r.sni ?? '(default)'))} in one line`, () => {
      const problem = checkRoutes(routes);
      assert.match(problem ?? 'null', want);
      assert.ok(!problem?.includes('\n'));
      assert.throws(() => new SniRouter(routes), { name: 'RangeError', message: want });
    });
  }

  test('names the place it was given', () => {
    assert.match(
      checkRoutes([], 'proxy.yaml listeners[2].routes') ?? '',
      /^proxy\.yaml listeners\[2\]\.routes: /,
    );
  });

  test('accepts a default route alone', () => {
    assert.equal(checkRoutes([{ targets: t }]), null);
  });
});

describe('SniRouter', () => {
  const routes = [
    { sni: '*.example.com', targets: ['wild'] },
    { sni: 'a.example.com', targets: ['a'] },
    { sni: 'B.Example.com', targets: ['b'] },
    { targets: ['default'] },
  ];
  const router = new SniRouter(routes);
  const pick = (name: string | null) => router.route(name).targets[0];

  test('routes exact names before wildcards, in any case', () => {
    assert.equal(pick('a.example.com'), 'a');
    assert.equal(pick('b.example.com'), 'b');
    assert.equal(pick('A.EXAMPLE.COM'), 'a');
    assert.equal(pick('c.example.com'), 'wild');
  });

  test('sends no name, a name two labels deep, the bare domain and unknown names to the default', () => {
    assert.equal(pick(null), 'default');
    assert.equal(pick('x.a.example.com'), 'default');
    assert.equal(pick('example.com'), 'default');
    assert.equal(pick('a.example.org'), 'default');
    assert.equal(router.defaultRoute, routes[3]);
  });
});

describe('CertificateChooser', () => {
  test('reads DNS subjectAltNames, quoted ones too, and falls back to the subject CN', () => {
    assert.deepEqual(
      subjectAltDnsNames('DNS:a.example.com, IP Address:127.0.0.1, DNS:*.b.example.com'),
      ['a.example.com', '*.b.example.com'],
    );
    assert.deepEqual(subjectAltDnsNames('DNS:"a, b", DNS:c'), ['a, b', 'c']);
    assert.deepEqual(subjectAltDnsNames(undefined), []);
  });

  test('chooses by SNI with exact names first, one-label wildcards, any case; the first is the default', async (t) => {
    const dir = await tempDir(t);
    const [first, wild, exact, cnOnly] = await Promise.all([
      makeCertificate(dir, 'first', 'default.test'),
      makeCertificate(dir, 'wild', 'wild.example.com', ['*.example.com']),
      makeCertificate(dir, 'exact', 'a.example.com', ['a.example.com', 'other.test']),
      makeCertificate(dir, 'cn', 'CN.Example.org', []),
    ]);
    const pairs = [first, wild, exact, cnOnly];
    const chooser = CertificateChooser.load(pairs);
    if (typeof chooser === 'string') throw new Error(chooser);
    assert.deepEqual(chooser.certificates[3]?.names, ['cn.example.org']);
    const chosen = (name: string | null) => pairs.indexOf(chooser.choose(name).pair);
    for (const [name, want] of [
      ['a.example.com', 2],
      ['A.Example.COM', 2],
      ['other.test', 2],
      ['b.example.com', 1],
      ['a.b.example.com', 0],
      ['example.com', 0],
      ['cn.example.org', 3],
      ['nothing.test', 0],
      [null, 0],
    ] as const) {
      assert.equal(chosen(name), want, String(name));
    }
    // OpenSSL's host check (one-label wildcards, no partial ones) agrees: the chosen
    // certificate matches the name, and the default is chosen only when none does.
    for (const name of ['a.example.com', 'b.example.com', 'a.b.example.com', 'example.com']) {
      const matching = chooser.certificates.filter(
        (c) => c.certificate.checkHost(name) !== undefined,
      );
      const picked = chooser.choose(name);
      if (matching.length > 0) assert.ok(matching.includes(picked), name);
      else assert.equal(picked, chooser.defaultCertificate, name);
    }
    assert.deepEqual(certificateNames(chooser.certificates[1]?.certificate as X509Certificate), [
      '*.example.com',
    ]);
  });

  test('refuses a bad certificate, a bad key and a key of another certificate, in one line', async (t) => {
    const dir = await tempDir(t);
    const [a, b] = await Promise.all([
      makeCertificate(dir, 'a', 'a.test'),
      makeCertificate(dir, 'b', 'b.test'),
    ]);
    assert.match(String(CertificateChooser.load([])), /^tls\.certs: expected at least one/);
    assert.match(
      String(CertificateChooser.load([a, { cert: 'nope', key: b.key }])),
      /^tls\.certs\[1\]\.cert: not a PEM certificate \(/,
    );
    assert.match(
      String(CertificateChooser.load([{ cert: a.cert, key: 'nope' }])),
      /^tls\.certs\[0\]\.key: not a PEM private key \(/,
    );
    const mixed = CertificateChooser.load([
      { cert: a.cert, key: b.key, certPath: a.certPath, keyPath: b.keyPath },
    ]);
    assert.equal(mixed, `${b.keyPath}: the key does not belong to the certificate ${a.certPath}`);
  });
});

describe('sniCallback', () => {
  test('a terminating TLS server presents the certificate the chooser picks for the client SNI', async (t) => {
    const dir = await tempDir(t);
    const pairs = await Promise.all([
      makeCertificate(dir, 'default', 'default.test'),
      makeCertificate(dir, 'wild', 'wild.example.com', ['*.example.com']),
    ]);
    const chooser = CertificateChooser.load(pairs);
    if (typeof chooser === 'string') throw new Error(chooser);
    const server = createTlsServer({
      cert: chooser.defaultCertificate.pair.cert,
      key: chooser.defaultCertificate.pair.key,
      SNICallback: sniCallback(chooser),
    });
    server.on('secureConnection', (socket) => socket.end('hi'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const { port } = server.address() as AddressInfo;
    for (const [servername, cn] of [
      ['a.example.com', 'wild.example.com'],
      ['a.b.example.com', 'default.test'],
      [undefined, 'default.test'],
    ] as const) {
      const socket = tlsConnect({
        port,
        host: '127.0.0.1',
        rejectUnauthorized: false,
        ...(servername === undefined ? {} : { servername }),
      });
      socket.on('error', () => {});
      await withTimeout(once(socket, 'secureConnect'), 5000, 'the TLS handshake');
      assert.equal(socket.getPeerCertificate().subject.CN, cn, String(servername));
      socket.destroy();
    }
  });
});
