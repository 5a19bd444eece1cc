/**
 * The PROXY protocol parser and encoder (src/proxy-protocol/): the specification's
 * examples and limits, byte by byte. The fast-check properties (round trip, any split,
 * no throw) are in proxy-protocol-properties.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c } from '../src/proxy-protocol/crc32c.js';
import {
  PP2_TYPE,
  type ProxyHeaderFields,
  type ProxyHeaderResult,
} from '../src/proxy-protocol/header.js';
import { parseProxyHeader } from '../src/proxy-protocol/parse.js';
import { proxyHeaderFields, splitHostPort } from '../src/proxy-protocol/preface.js';
import { encodeV1, V1_MAX_LENGTH } from '../src/proxy-protocol/v1.js';
import { encodeV2, V2_SIGNATURE } from '../src/proxy-protocol/v2.js';

const latin1 = (text: string) => Buffer.from(text, 'latin1');
const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function done(result: ProxyHeaderResult) {
  assert.equal(result.status, 'done', JSON.stringify(result));
  if (result.status !== 'done') throw new Error('unreachable');
  return result;
}

function errorOf(result: ProxyHeaderResult): string {
  assert.equal(result.status, 'error', `expected an error, got ${JSON.stringify(result)}`);
  if (result.status !== 'error') throw new Error('unreachable');
  return result.message;
}

describe('PROXY v1', () => {
  test("reads the specification's example and leaves the bytes after it", () => {
    const bytes = latin1(
      'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n',
    );
    const result = done(parseProxyHeader(bytes));
    assert.deepEqual(result.header, {
      version: 1,
      command: 'PROXY',
      family: 'IPv4',
      transport: 'stream',
      source: { address: '192.168.0.1', port: 56324 },
      destination: { address: '192.168.0.11', port: 443 },
      tlvs: [],
    });
    assert.equal(result.length, 47);
    assert.equal(result.rest.toString('latin1'), 'GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n');
  });

  test('reads TCP6 addresses in any valid spelling and gives them in canonical form', () => {
    const result = done(
      parseProxyHeader(latin1('PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::ffff:192.0.2.1 1 65535\r\n')),
    );
    assert.deepEqual(result.header.source, { address: '2001:db8::7', port: 1 });
    assert.deepEqual(result.header.destination, { address: '::ffff:192.0.2.1', port: 65535 });
    assert.equal(result.header.family, 'IPv6');
  });

  test('accepts the longest lines of the specification: TCP6 (104 bytes) and UNKNOWN with addresses (107)', () => {
    const f = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const tcp6 = latin1(`PROXY TCP6 ${f} ${f} 65535 65535\r\n`);
    assert.equal(tcp6.length, 104);
    assert.equal(done(parseProxyHeader(tcp6)).length, 104);
    const unknown = latin1(`PROXY UNKNOWN ${f} ${f} 65535 65535\r\n`);
    assert.equal(unknown.length, V1_MAX_LENGTH);
    const header = done(parseProxyHeader(unknown)).header;
    assert.equal(header.family, 'unspec');
    assert.equal(header.source, null);
  });

  test('reads the short UNKNOWN form', () => {
    const result = done(parseProxyHeader(latin1('PROXY UNKNOWN\r\nabc')));
    assert.equal(result.header.family, 'unspec');
    assert.equal(result.rest.toString(), 'abc');
  });

  test('refuses a line with no CRLF in its first 107 bytes, even while it could still come', () => {
    const long = latin1(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n`); // 108 bytes
    assert.equal(long.length, 108);
    assert.equal(
      errorOf(parseProxyHeader(long)),
      'PROXY v1 header: no CRLF in the first 107 bytes',
    );
    assert.equal(
      errorOf(parseProxyHeader(long.subarray(0, 107))),
      'PROXY v1 header: no CRLF in the first 107 bytes',
    );
    assert.equal(parseProxyHeader(long.subarray(0, 106)).status, 'more');
  });

  const bad: [string, string][] = [
    ['PROXY TCP4 192.0.2.1 192.0.2.2 99999 80\r\n', 'PROXY v1 header: bad source port "99999"'],
    ['PROXY TCP4 192.0.2.1 192.0.2.2 80 0443\r\n', 'PROXY v1 header: bad destination port "0443"'],
    [
      'PROXY TCP4 010.0.2.1 192.0.2.2 80 443\r\n',
      'PROXY v1 header: bad source address "010.0.2.1" for TCP4',
    ],
    ['PROXY TCP4 ::1 192.0.2.2 80 443\r\n', 'PROXY v1 header: bad source address "::1" for TCP4'],
    [
      'PROXY TCP6 ::1 192.0.2.2 80 443\r\n',
      'PROXY v1 header: bad destination address "192.0.2.2" for TCP6',
    ],
    [
      'PROXY TCP5 192.0.2.1 192.0.2.2 80 443\r\n',
      'PROXY v1 header: unknown protocol "TCP5" (expected TCP4, TCP6 or UNKNOWN)',
    ],
    [
      'PROXY TCP4  192.0.2.1 192.0.2.2 80 443\r\n',
      'PROXY v1 header: expected "PROXY TCP4 SOURCE DESTINATION SOURCE_PORT DESTINATION_PORT" with single spaces, got "PROXY TCP4  192.0.2.1 192.0.2.2 80 443"',
    ],
    [
      'PROXY TCP4 192.0.2.1 192.0.2.2 80 443\n',
      'PROXY v1 header: line ends with a bare LF at offset 37',
    ],
    [
      'PROXY TCP4 192.0.2.1 192.0.2.2 80 443\rX',
      'PROXY v1 header: CR at offset 37 is not followed by LF',
    ],
    [
      'PROXY TCP4 192.0.2.1\t192.0.2.2 80 443\r\n',
      'PROXY v1 header: byte 0x09 at offset 20 is not printable US-ASCII',
    ],
    ['PROXYTCP4', 'PROXY header: expected "PROXY " (v1) or the v2 signature, got "PROXYT"'],
    ['GET / HTTP/1.1\r\n', 'PROXY header: expected "PROXY " (v1) or the v2 signature, got "G"'],
  ];
  for (const [line, message] of bad) {
    test(`refuses ${JSON.stringify(line)} with one line naming what is wrong`, () => {
      assert.equal(errorOf(parseProxyHeader(latin1(line))), message);
    });
  }

  test('refuses a header that is not one as soon as a byte differs from both signatures', () => {
    assert.equal(parseProxyHeader(latin1('PRO')).status, 'more');
    assert.equal(parseProxyHeader(latin1('PRX')).status, 'error');
    assert.equal(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01])).status, 'error'); // TLS
    assert.equal(parseProxyHeader(V2_SIGNATURE.subarray(0, 5)).status, 'more');
  });

  test('writes TCP4, TCP6 and UNKNOWN lines', () => {
    const tcp4 = proxyHeaderFields(
      { address: '192.0.2.7', port: 5000 },
      { address: '198.51.100.1', port: 443 },
    );
    assert.equal(encodeV1(tcp4).toString(), 'PROXY TCP4 192.0.2.7 198.51.100.1 5000 443\r\n');
    const tcp6 = proxyHeaderFields(
      { address: '2001:db8::7', port: 1 },
      { address: '::1', port: 2 },
    );
    assert.equal(encodeV1(tcp6).toString(), 'PROXY TCP6 2001:db8::7 ::1 1 2\r\n');
    assert.equal(encodeV1(proxyHeaderFields(null, null)).toString(), 'PROXY UNKNOWN\r\n');
  });
});

describe('PROXY v2', () => {
  test('reads a header as haproxy send-proxy-v2 writes it (TCP over IPv4), then the request', () => {
    const bytes = Buffer.concat([
      hex('0d0a0d0a000d0a515549540a 21 11 000c ac130001 ac130003 a652 0050'),
      latin1('GET / HTTP/1.1\r\n'),
    ]);
    const result = done(parseProxyHeader(bytes));
    assert.deepEqual(result.header, {
      version: 2,
      command: 'PROXY',
      family: 'IPv4',
      transport: 'stream',
      source: { address: '172.19.0.1', port: 42578 },
      destination: { address: '172.19.0.3', port: 80 },
      tlvs: [],
    });
    assert.equal(result.length, 28);
    assert.equal(result.rest.toString(), 'GET / HTTP/1.1\r\n');
  });

  test('reads LOCAL with no addresses, and LOCAL with an address block it must ignore', () => {
    const empty = done(parseProxyHeader(hex('0d0a0d0a000d0a515549540a 20 00 0000')));
    assert.equal(empty.header.command, 'LOCAL');
    assert.equal(empty.header.source, null);
    // LOCAL, INET, but only 3 address bytes: a PROXY header would be refused.
    const junk = done(parseProxyHeader(hex('0d0a0d0a000d0a515549540a 20 11 0003 010203 ff')));
    assert.equal(junk.header.command, 'LOCAL');
    assert.equal(junk.header.family, 'unspec');
    assert.equal(junk.length, 19);
    assert.deepEqual([...junk.rest], [0xff]);
    assert.equal(
      errorOf(parseProxyHeader(hex('0d0a0d0a000d0a515549540a 21 11 0003 010203'))),
      'PROXY v2 header: length 3 is too short for IPv4 addresses (12 bytes)',
    );
  });

  test('reads IPv6, Unix socket and UDP headers and their TLVs', () => {
    const fields: ProxyHeaderFields = {
      command: 'PROXY',
      family: 'unix',
      transport: 'dgram',
      source: { address: '/run/client.sock', port: 0 },
      destination: { address: '/run/server.sock', port: 0 },
      tlvs: [
        { type: PP2_TYPE.AUTHORITY, value: latin1('example.com') },
        { type: PP2_TYPE.NOOP, value: new Uint8Array(0) },
      ],
    };
    const bytes = encodeV2(fields);
    assert.equal(bytes.length, 16 + 216 + 14 + 3);
    assert.deepEqual(done(parseProxyHeader(bytes)).header, {
      version: 2,
      ...fields,
      tlvs: fields.tlvs.map((t) => ({ type: t.type, value: Uint8Array.from(t.value) })),
    });
  });

  const bad: [string, string, string][] = [
    [
      'version 1',
      '0d0a0d0a000d0a515549540a 11',
      'PROXY v2 header: unsupported version 1 (expected 2)',
    ],
    ['command 2', '0d0a0d0a000d0a515549540a 22', 'PROXY v2 header: unknown command 0x2'],
    ['family 4', '0d0a0d0a000d0a515549540a 21 41', 'PROXY v2 header: unknown address family 0x4'],
    [
      'transport 3',
      '0d0a0d0a000d0a515549540a 21 13',
      'PROXY v2 header: unknown transport protocol 0x3',
    ],
    [
      'a TLV running past the end',
      '0d0a0d0a000d0a515549540a 21 11 0010 01020304 05060708 0001 0002 02 0009 61',
      'PROXY v2 header: TLV 0x02 at offset 28 claims 9 bytes, only 1 are left',
    ],
    [
      'a cut TLV',
      '0d0a0d0a000d0a515549540a 21 00 0002 0200',
      'PROXY v2 header: TLV at offset 16 is cut short: 2 bytes left, a TLV needs 3',
    ],
    [
      'a CRC32C TLV of 2 bytes',
      '0d0a0d0a000d0a515549540a 21 00 0005 03 0002 0000',
      'PROXY v2 header: CRC32C TLV has 2 bytes, expected 4',
    ],
  ];
  for (const [what, bytes, message] of bad) {
    test(`refuses ${what} with one line naming it`, () => {
      assert.equal(errorOf(parseProxyHeader(hex(bytes))), message);
    });
  }

  test('waits for the whole length the header announces, up to 16 + 65535 bytes', () => {
    const fields = proxyHeaderFields({ address: '::1', port: 1 }, { address: '::2', port: 2 });
    const big = encodeV2({
      ...fields,
      tlvs: [{ type: 0xe0, value: new Uint8Array(0xffff - 36 - 3) }],
    });
    assert.equal(big.length, 16 + 0xffff);
    const partial = parseProxyHeader(big.subarray(0, 1000));
    assert.deepEqual(partial, { status: 'more', needed: big.length });
    assert.equal(done(parseProxyHeader(big)).length, big.length);
    assert.throws(
      () => encodeV2({ ...fields, tlvs: [{ type: 0xe0, value: new Uint8Array(0xffff) }] }),
      /over the limit/,
    );
  });

  test('checks a CRC32C TLV: the right checksum passes, any other byte fails', () => {
    assert.equal(crc32c(latin1('123456789')), 0xe3069283); // RFC 3720 B.4's check value
    const fields = proxyHeaderFields(
      { address: '192.0.2.7', port: 5000 },
      { address: '198.51.100.1', port: 443 },
    );
    const bytes = encodeV2(fields, { crc32c: true });
    const header = done(parseProxyHeader(bytes)).header;
    assert.equal(header.tlvs[0]?.type, PP2_TYPE.CRC32C);
    const tampered = Buffer.from(bytes);
    tampered[17] = (tampered[17] as number) ^ 1; // the source address
    assert.match(
      errorOf(parseProxyHeader(tampered)),
      /^PROXY v2 header: CRC32C checksum 0x[0-9a-f]+ does not match/,
    );
  });

  test('writes LOCAL with family UNSPEC for a client without an IP address (a Unix socket)', () => {
    const bytes = encodeV2(proxyHeaderFields(null, { address: '127.0.0.1', port: 80 }));
    assert.deepEqual(bytes, hex('0d0a0d0a000d0a515549540a 20 00 0000'));
  });
});

describe('choosing what a sent header says', () => {
  test('an IPv4-mapped client and local address are sent as IPv4; mixed families as IPv6', () => {
    const mapped = proxyHeaderFields(
      { address: '::ffff:192.0.2.7', port: 1 },
      { address: '::ffff:127.0.0.1', port: 2 },
    );
    assert.equal(mapped.family, 'IPv4');
    assert.deepEqual(mapped.source, { address: '192.0.2.7', port: 1 });
    const mixed = proxyHeaderFields(
      { address: '2001:db8::1', port: 1 },
      { address: '127.0.0.1', port: 2 },
    );
    assert.equal(mixed.family, 'IPv6');
    assert.deepEqual(mixed.destination, { address: '::ffff:127.0.0.1', port: 2 });
    const noDestination = proxyHeaderFields({ address: '192.0.2.7', port: 1 }, null);
    assert.deepEqual(noDestination.destination, { address: '0.0.0.0', port: 0 });
  });

  test('splitHostPort reads the client addresses logs print, and nothing else', () => {
    assert.deepEqual(splitHostPort('192.0.2.7:5000'), { address: '192.0.2.7', port: 5000 });
    assert.deepEqual(splitHostPort('[2001:db8::1]:80'), { address: '2001:db8::1', port: 80 });
    for (const text of ['unix', 'unknown', 'alice', 'host:80', '2001:db8::1:80', '1.2.3.4:99999']) {
      assert.equal(splitHostPort(text), null, text);
    }
  });
});
