/**
 * fast-check properties of the PROXY protocol parser and encoder (src/proxy-protocol/):
 * what is encoded (v1 and v2, any addresses, ports, TLVs) parses back; any split of
 * the bytes into chunks gives the same answer as the whole; no input makes it throw.
 * The specification's examples are in proxy-protocol.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatIp } from '../src/ip-address.js';
import {
  PP2_TYPE,
  type ProxyHeaderFields,
  type ProxyHeaderResult,
} from '../src/proxy-protocol/header.js';
import { ProxyHeaderParser, parseProxyHeader } from '../src/proxy-protocol/parse.js';
import { proxyHeaderFields } from '../src/proxy-protocol/preface.js';
import { encodeV1 } from '../src/proxy-protocol/v1.js';
import { encodeV2, V2_SIGNATURE } from '../src/proxy-protocol/v2.js';

const latin1 = (text: string) => Buffer.from(text, 'latin1');

function done(result: ProxyHeaderResult) {
  assert.equal(result.status, 'done', JSON.stringify(result));
  if (result.status !== 'done') throw new Error('unreachable');
  return result;
}

const ipv4 = fc
  .uint8Array({ minLength: 4, maxLength: 4 })
  .map((b) => formatIp({ family: 4, bytes: b }));
// Zero groups are likely, so that `::` compression is exercised.
const ipv6 = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  })
  .map((groups) => {
    const bytes = new Uint8Array(16);
    groups.forEach((g, i) => {
      bytes[i * 2] = g >> 8;
      bytes[i * 2 + 1] = g & 0xff;
    });
    return formatIp({ family: 6, bytes });
  });
const port = fc.integer({ min: 0, max: 65535 });
const unixPath = fc.stringMatching(/^\/[a-z0-9/._-]{0,100}$/);
const tlv = fc.record({
  type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== PP2_TYPE.CRC32C),
  value: fc.uint8Array({ maxLength: 40 }),
});

const v2Fields: fc.Arbitrary<ProxyHeaderFields> = fc
  .record({
    command: fc.constantFrom('PROXY' as const, 'LOCAL' as const),
    family: fc.constantFrom('IPv4' as const, 'IPv6' as const, 'unix' as const, 'unspec' as const),
    transport: fc.constantFrom('stream' as const, 'dgram' as const, 'unspec' as const),
    tlvs: fc.array(tlv, { maxLength: 4 }),
  })
  .chain((f): fc.Arbitrary<ProxyHeaderFields> => {
    const address = f.family === 'IPv4' ? ipv4 : f.family === 'IPv6' ? ipv6 : unixPath;
    const portOf = f.family === 'unix' ? fc.constant(0) : port;
    const endpoint = fc.tuple(address, portOf).map(([a, p]) => ({ address: a, port: p }));
    if (f.family === 'unspec') return fc.constant({ ...f, source: null, destination: null });
    return fc
      .tuple(endpoint, endpoint)
      .map(([source, destination]) => ({ ...f, source, destination }));
  });

const v1Fields: fc.Arbitrary<ProxyHeaderFields> = fc.oneof(
  fc.record({ source: ipv4, destination: ipv4, sp: port, dp: port }).map((a) => ({
    command: 'PROXY' as const,
    family: 'IPv4' as const,
    transport: 'stream' as const,
    source: { address: a.source, port: a.sp },
    destination: { address: a.destination, port: a.dp },
    tlvs: [],
  })),
  fc.record({ source: ipv6, destination: ipv6, sp: port, dp: port }).map((a) => ({
    command: 'PROXY' as const,
    family: 'IPv6' as const,
    transport: 'stream' as const,
    source: { address: a.source, port: a.sp },
    destination: { address: a.destination, port: a.dp },
    tlvs: [],
  })),
  fc.constant(proxyHeaderFields(null, null)),
);

/** Valid headers of both versions, encoded, with what they should parse to. */
const encoded = fc.oneof(
  v1Fields.map((fields) => ({
    bytes: encodeV1(fields),
    header:
      fields.family === 'unspec'
        ? { version: 1, ...fields, command: 'PROXY' }
        : { version: 1, ...fields },
  })),
  fc.tuple(v2Fields, fc.boolean()).map(([fields, crc]) => {
    const bytes = encodeV2(fields, { crc32c: crc });
    const tlvs = crc
      ? [...fields.tlvs, { type: PP2_TYPE.CRC32C, value: bytes.subarray(-4) }]
      : fields.tlvs;
    const header = {
      version: 2,
      ...fields,
      tlvs: tlvs.map((t) => ({ type: t.type, value: Uint8Array.from(t.value) })),
    };
    return { bytes, header };
  }),
);

const trailing = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b));

/** Inputs of every kind: valid headers, damaged ones, and junk starting like a header or not. */
const anyInput = fc.oneof(
  fc.tuple(encoded, trailing).map(([e, t]) => Buffer.concat([e.bytes, t])),
  fc
    .tuple(encoded, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat())
    .map(([e, at, xor, cut]) => {
      const b = Buffer.from(e.bytes);
      const i = at % b.length;
      b[i] = (b[i] as number) ^ xor;
      return b.subarray(0, b.length - (cut % 4));
    }),
  trailing.map((t) => Buffer.concat([latin1('PROXY '), t])),
  trailing.map((t) => Buffer.concat([V2_SIGNATURE, t])),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
);

/** chunksOf splits bytes at the given cut points. */
function chunksOf(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  return chunks;
}

/** feed pushes chunks until an answer; chunks after a header are what follows its rest. */
function feed(chunks: Buffer[]): ProxyHeaderResult {
  const parser = new ProxyHeaderParser();
  let result: ProxyHeaderResult = { status: 'more', needed: 1 };
  for (const [i, chunk] of chunks.entries()) {
    result = parser.push(chunk);
    if (result.status === 'done') {
      return { ...result, rest: Buffer.concat([result.rest, ...chunks.slice(i + 1)]) };
    }
    if (result.status === 'error') break;
  }
  return result;
}

describe('properties', () => {
  test('what is encoded (v1 and v2, any addresses, ports and TLVs) parses back, with the bytes after it', () => {
    fc.assert(
      fc.property(encoded, trailing, (e, rest) => {
        const result = done(parseProxyHeader(Buffer.concat([e.bytes, rest])));
        assert.deepEqual(result.header, e.header);
        assert.equal(result.length, e.bytes.length);
        assert.deepEqual(result.rest, rest);
      }),
      { numRuns: 500 },
    );
  });

  test('any split of the input into chunks gives the same answer as the whole', () => {
    fc.assert(
      fc.property(anyInput, fc.array(fc.nat(), { maxLength: 12 }), (bytes, cuts) => {
        assert.deepEqual(feed(chunksOf(bytes, cuts)), parseProxyHeader(bytes));
      }),
      { numRuns: 1000 },
    );
  });

  test('a valid header fed one byte at a time is read the same', () => {
    fc.assert(
      fc.property(encoded, (e) => {
        const bytes = [...e.bytes].map((b) => Buffer.from([b]));
        assert.deepEqual(feed(bytes), parseProxyHeader(e.bytes));
      }),
      { numRuns: 100 },
    );
  });

  test('no input throws: the answer is more, a header, or a one-line error', () => {
    fc.assert(
      fc.property(anyInput, (bytes) => {
        const result = parseProxyHeader(bytes);
        if (result.status === 'more') assert.ok(result.needed > bytes.length);
        if (result.status === 'done') assert.ok(result.length <= bytes.length);
        if (result.status === 'error') {
          assert.match(result.message, /^PROXY (v1 |v2 )?header: \S/);
          assert.doesNotMatch(result.message, /[\r\n]/);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('an incomplete valid header is always "more", never an error', () => {
    fc.assert(
      fc.property(encoded, fc.nat(), (e, cut) => {
        const prefix = e.bytes.subarray(0, cut % e.bytes.length);
        assert.equal(parseProxyHeader(prefix).status, 'more');
      }),
      { numRuns: 500 },
    );
  });
});
