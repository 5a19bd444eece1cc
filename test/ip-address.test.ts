/**
 * IP addresses as bytes (src/ip-address.ts): every spelling read, the canonical one
 * written, and agreement with Node's own `isIP` and the URL parser (fast-check).
 */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatIp, type IpAddress, parseIp, unmapIp } from '../src/ip-address.js';

const ip = (text: string): IpAddress => {
  const parsed = parseIp(text);
  assert.ok(parsed, `${text} parses`);
  return parsed;
};

describe('IP addresses', () => {
  test('reads every spelling of an address and writes the canonical one (RFC 5952)', () => {
    const cases: [string, string][] = [
      ['192.0.2.7', '192.0.2.7'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['::ffff:192.0.2.7', '::ffff:192.0.2.7'],
      ['::FFFF:c000:0207', '::ffff:192.0.2.7'],
      ['::', '::'],
      ['1::', '1::'],
      ['fe80::0001', 'fe80::1'],
    ];
    for (const [text, canonical] of cases) assert.equal(formatIp(ip(text)), canonical, text);
  });

  test('refuses what is not exactly an address', () => {
    for (const text of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.1.1.1',
      '1.2.3.-4',
      ' 1.2.3.4',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      ':::',
      '12345::',
      'fe80::1%eth0',
      '[::1]',
      '1.2.3.4::',
      '::1.2.3',
      'localhost',
    ]) {
      assert.equal(parseIp(text), undefined, JSON.stringify(text));
    }
  });

  test('agrees with node:net isIP on which strings are addresses, and with the URL parser on the IPv6 form', () => {
    const hexish = fc.stringMatching(/^[0-9a-fA-F:.]{0,45}$/);
    fc.assert(
      fc.property(hexish, (text) => {
        assert.equal(parseIp(text) !== undefined, isIP(text) !== 0, JSON.stringify(text));
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const v6: IpAddress = { family: 6, bytes };
        const text = formatIp(v6);
        assert.deepEqual(parseIp(text)?.bytes, bytes);
        // WHATWG writes an IPv4-mapped address in hex; otherwise both follow RFC 5952.
        if (unmapIp(v6) === v6) assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname);
      }),
      { numRuns: 1000 },
    );
  });
});
