/**
 * The ClientHello parser (src/tls/client-hello.ts): fast-check properties over
 * ClientHellos built byte by byte (names, extension orders, padding, records), every
 * chunking, random and mutated bytes; the bytes real clients send (Node's tls.connect,
 * openssl s_client, curl), captured on a raw TCP server; and one-line errors.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import {
  CLIENT_HELLO_LIMIT,
  type ClientHelloParse,
  parseClientHello,
} from '../src/tls/client-hello.js';
import {
  buildClientHello,
  captureClientHello,
  type HelloSpec,
  handshakeMessage,
  helloBody,
  records,
  spawnTool,
} from './helpers/tls.js';

/** A host name as clients send it: labels of letters, digits and hyphens, any case. */
const label = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?$/);
const hostName = fc
  .array(label, { minLength: 1, maxLength: 6 })
  .map((labels) => labels.join('.'))
  .filter((name) => name.length <= 253);
const protocol = fc.stringMatching(/^[!-~]{1,20}$/);
const otherExtension = fc.record({
  type: fc.integer({ min: 1, max: 0xffff }).filter((t) => t !== 16),
  data: fc.uint8Array({ maxLength: 64 }),
});
const padding = fc
  .integer({ min: 0, max: 600 })
  .map((n) => ({ type: 21, data: new Uint8Array(n) }));

const helloSpec: fc.Arbitrary<HelloSpec> = fc.record({
  serverName: fc.option(hostName, { nil: null }),
  alpn: fc.option(fc.array(protocol, { minLength: 1, maxLength: 4 }), { nil: undefined }),
  extensions: fc
    .tuple(fc.uniqueArray(otherExtension, { selector: (e) => e.type, maxLength: 8 }), padding)
    .map(([others, pad]) => [...others.filter((e) => e.type !== 21), pad]),
  serverNameAt: fc.nat(10),
  alpnAt: fc.nat(10),
  sessionId: fc.uint8Array({ maxLength: 32 }),
  cipherSuites: fc.integer({ min: 1, max: 40 }),
  fragments: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 5 }),
});

function complete(result: ClientHelloParse) {
  assert.equal(result.state, 'complete', JSON.stringify(result));
  if (result.state !== 'complete') throw new Error('unreachable');
  return result.hello;
}

function errorOf(bytes: Uint8Array): string {
  const result = parseClientHello(bytes);
  assert.equal(result.state, 'invalid', JSON.stringify(result));
  return result.state === 'invalid' ? result.error : '';
}

describe('parseClientHello on built ClientHellos', () => {
  test('reads back the server name (lower-cased) and ALPN list, whatever the extension order, padding and records', () => {
    fc.assert(
      fc.property(helloSpec, (spec) => {
        const bytes = buildClientHello(spec);
        const hello = complete(parseClientHello(bytes));
        assert.equal(hello.serverName, spec.serverName?.toLowerCase() ?? null);
        assert.deepEqual(hello.alpn, spec.alpn ?? []);
        assert.equal(hello.length, bytes.length);
      }),
      { numRuns: 300 },
    );
  });

  test('answers incomplete for every prefix, and the same for the whole followed by any bytes', () => {
    fc.assert(
      fc.property(helloSpec, fc.uint8Array({ maxLength: 50 }), (spec, after) => {
        const bytes = buildClientHello(spec);
        for (let i = 0; i < bytes.length; i++) {
          assert.equal(parseClientHello(bytes.subarray(0, i)).state, 'incomplete', `prefix ${i}`);
        }
        const whole = parseClientHello(bytes);
        assert.deepEqual(parseClientHello(Buffer.concat([bytes, after])), whole);
      }),
      { numRuns: 60 },
    );
  });

  test('a ClientHello without extensions (TLS 1.0 to 1.2 may send one) has no server name', () => {
    const hello = complete(parseClientHello(buildClientHello({ noExtensions: true })));
    assert.equal(hello.serverName, null);
    assert.deepEqual(hello.alpn, []);
  });

  test('drops one trailing dot of the server name', () => {
    const hello = complete(parseClientHello(buildClientHello({ serverName: 'A.Example.COM.' })));
    assert.equal(hello.serverName, 'a.example.com');
  });
});

describe('parseClientHello never throws', () => {
  test('on random bytes, and it decides the same on every longer input (any chunking)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          // Mostly-valid starts reach deeper: a handshake record header, then noise.
          fc
            .tuple(fc.constantFrom(1, 3), fc.uint8Array({ maxLength: 400 }))
            .map(([minor, rest]) => Buffer.concat([Buffer.from([22, 3, minor]), rest])),
        ),
        fc.nat(400),
        (bytes, cut) => {
          checkShape(bytes);
          const prefix = parseClientHello(bytes.subarray(0, Math.min(cut, bytes.length)));
          if (prefix.state !== 'incomplete') assert.deepEqual(parseClientHello(bytes), prefix);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('on built ClientHellos with bytes changed, cut or inserted', () => {
    fc.assert(
      fc.property(
        helloSpec,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.nat(),
        (spec, changes, cut) => {
          const bytes = Buffer.from(buildClientHello(spec));
          for (const [at, value] of changes) bytes[at % bytes.length] = value;
          checkShape(bytes);
          const prefix = parseClientHello(bytes.subarray(0, cut % (bytes.length + 1)));
          if (prefix.state !== 'incomplete') assert.deepEqual(parseClientHello(bytes), prefix);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('on ClientHellos whose inner lengths lie (every length field set to random values)', () => {
    fc.assert(
      fc.property(fc.nat(200), fc.integer({ min: 0, max: 0xffff }), (at, value) => {
        const body = helloBody({ serverName: 'a.example.com', alpn: ['h2'] });
        const b = Buffer.from(body);
        const i = at % (b.length - 1);
        b.writeUInt16BE(value, i);
        checkShape(records(handshakeMessage(b)));
      }),
      { numRuns: 2000 },
    );
  });
});

/** checkShape: one of the three answers; an error is one line starting `ClientHello: `. */
function checkShape(bytes: Uint8Array): void {
  const result = parseClientHello(bytes);
  assert.ok(['incomplete', 'complete', 'invalid'].includes(result.state));
  if (result.state === 'invalid') {
    assert.match(result.error, /^ClientHello: \S/);
    assert.ok(!result.error.includes('\n'), 'one line');
  }
}

describe('parseClientHello errors name what is wrong', () => {
  test('plain text is not a TLS handshake record, at its first byte', () => {
    assert.equal(
      errorOf(Buffer.from('G')),
      "ClientHello: not a TLS handshake record (first byte 0x47 'G')",
    );
    assert.match(errorOf(Buffer.from([22, 2])), /record version major byte 0x02/);
  });

  test('a record of another type before the ClientHello ended, an empty or oversized record', () => {
    const message = handshakeMessage(helloBody({ serverName: 'a.example.com' }));
    const first = records(message.subarray(0, 10));
    const alert = Buffer.from([21, 3, 3, 0, 2, 2, 40]);
    assert.match(errorOf(Buffer.concat([first, alert])), /record 2 has content type 21/);
    assert.match(errorOf(Buffer.from([22, 3, 1, 0, 0])), /record 1 is empty/);
    assert.match(errorOf(Buffer.from([22, 3, 1, 0x40, 1])), /16385 bytes, more than the 16384/);
  });

  test('another handshake message first', () => {
    assert.match(
      errorOf(records(handshakeMessage(Buffer.alloc(50), 2))),
      /first handshake message is type 2, not a ClientHello/,
    );
  });

  test('a truncated extension names the extension and the lengths', () => {
    const body = helloBody({ alpn: ['h2', 'http/1.1'] });
    // The ALPN extension is the last 4 + 14 bytes; claim 40 bytes of data instead of 14.
    const bad = Buffer.from(body);
    bad.writeUInt16BE(40, bad.length - 16);
    assert.equal(
      errorOf(records(handshakeMessage(bad))),
      'ClientHello: truncated extension application_layer_protocol_negotiation: says 40 bytes, 14 left',
    );
  });

  test('bad lengths in the body: session id, cipher suites, compression, bytes after the extensions', () => {
    const body = helloBody({ serverName: 'a.example.com' });
    const withTrailer = Buffer.concat([body, Buffer.from([0, 0, 0])]);
    for (const [bytes, want] of [
      [withTrailer, /^ClientHello: 3 bytes after the extensions$/],
      [helloBody({ sessionId: new Uint8Array(33) }), /session id of 33 bytes \(at most 32\)/],
      [
        Buffer.concat([body.subarray(0, 35 + 32), Buffer.from([0, 3, 1, 2, 3])]),
        /cipher suites of 3 bytes/,
      ],
      [body.subarray(0, 20), /truncated in its random/],
      [Buffer.concat([body.subarray(0, 35 + 32 + 8), Buffer.from([0])]), /no compression methods/],
      [Buffer.concat([body.subarray(0, 35 + 32 + 10), Buffer.from([0])]), /truncated extensions/],
    ] as const) {
      assert.match(errorOf(records(handshakeMessage(bytes))), want);
    }
  });

  test('a bad server name, two server names, a duplicate extension', () => {
    assert.match(
      errorOf(buildClientHello({ serverName: 'a b.example.com' })),
      /server_name: "a b.example.com" is not a host name/,
    );
    assert.match(errorOf(buildClientHello({ serverName: 'a..example.com' })), /is not a host name/);
    const twice = buildClientHello({
      serverName: 'a.example.com',
      extensions: [{ type: 0, data: Buffer.from([0, 4, 0, 0, 1, 0x62]) }],
    });
    assert.match(errorOf(twice), /extension server_name appears twice/);
  });

  test('a ClientHello larger than the limit, whole or cut into small records, is refused', () => {
    const big = buildClientHello({
      serverName: 'a.example.com',
      extensions: [{ type: 21, data: new Uint8Array(CLIENT_HELLO_LIMIT) }],
    });
    assert.match(errorOf(big.subarray(0, 9)), /ClientHello of \d+ bytes is larger than the 16384/);
    const small = buildClientHello({
      serverName: 'a.example.com',
      extensions: [{ type: 21, data: new Uint8Array(15_500) }],
      fragments: [100],
    });
    assert.equal(parseClientHello(small.subarray(0, CLIENT_HELLO_LIMIT - 1)).state, 'incomplete');
    assert.match(errorOf(small), /no complete ClientHello in the first 16384 bytes/);
    // The same ClientHello in one record fits.
    const fits = buildClientHello({
      serverName: 'a.example.com',
      extensions: [{ type: 21, data: new Uint8Array(15_500) }],
    });
    assert.equal(complete(parseClientHello(fits)).serverName, 'a.example.com');
  });
});

/** everySplit checks that the captured bytes give `hello` when cut into two reads anywhere. */
function checkEveryPrefix(bytes: Buffer): void {
  for (let i = 0; i < bytes.length; i++) {
    assert.equal(parseClientHello(bytes.subarray(0, i)).state, 'incomplete', `prefix ${i}`);
  }
}

describe('ClientHellos of real clients', () => {
  test("Node's tls.connect with servername and ALPN", async (t) => {
    const bytes = await captureClientHello(t, (port) => {
      const socket = tlsConnect({
        port,
        host: '127.0.0.1',
        servername: 'A.Example.com',
        ALPNProtocols: ['h2', 'http/1.1'],
      });
      socket.on('error', () => {});
      return socket;
    });
    const hello = complete(parseClientHello(bytes));
    assert.equal(hello.serverName, 'a.example.com');
    assert.deepEqual(hello.alpn, ['h2', 'http/1.1']);
    checkEveryPrefix(bytes);
  });

  test("Node's tls.connect without a server name (an IP address) sends no SNI", async (t) => {
    const bytes = await captureClientHello(t, (port) => {
      const socket = tlsConnect({ port, host: '127.0.0.1' });
      socket.on('error', () => {});
      return socket;
    });
    assert.equal(complete(parseClientHello(bytes)).serverName, null);
  });

  for (const [what, extra] of [
    ['TLS 1.3', []],
    ['TLS 1.2 only', ['-tls1_2']],
  ] as const) {
    test(`openssl s_client -servername (${what})`, async (t) => {
      const bytes = await captureClientHello(t, (port) =>
        spawnTool('openssl', [
          's_client',
          '-connect',
          `127.0.0.1:${port}`,
          '-servername',
          'b.example.com',
          '-alpn',
          'h2,http/1.1',
          ...extra,
        ]),
      );
      const hello = complete(parseClientHello(bytes));
      assert.equal(hello.serverName, 'b.example.com');
      assert.deepEqual(hello.alpn, ['h2', 'http/1.1']);
      checkEveryPrefix(bytes);
    });
  }

  test('curl --resolve to a name', async (t) => {
    const bytes = await captureClientHello(t, (port) =>
      spawnTool('curl', [
        '-sk',
        '--max-time',
        '20',
        '--resolve',
        `c.example.com:${port}:127.0.0.1`,
        `https://c.example.com:${port}/`,
      ]),
    );
    const hello = complete(parseClientHello(bytes));
    assert.equal(hello.serverName, 'c.example.com');
    assert.ok(hello.alpn.includes('http/1.1'), `ALPN ${hello.alpn.join(',')}`);
  });
});
