/**
 * Access control (src/access/): examples and fast-check properties for CIDR parsing
 * and matching, and the token bucket and per-address counts driven by an injected
 * clock (no sleeping). The IP addresses it reads: ip-address.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { AccessControl } from '../src/access/access-control.js';
import { AccessList, TRIE_THRESHOLD } from '../src/access/access-list.js';
import { type Cidr, CidrError, cidrContains, parseCidr } from '../src/access/cidr.js';
import { ConnectionCount } from '../src/access/connection-count.js';
import { formatRate, parseRate, RateError, RateLimiter } from '../src/access/rate-limit.js';
import { formatIp, type IpAddress, mapIpv4, parseIp, unmapIp } from '../src/ip-address.js';

const ip = (text: string): IpAddress => {
  const parsed = parseIp(text);
  assert.ok(parsed, `${text} parses`);
  return parsed;
};

describe('CIDR ranges', () => {
  test('reads ranges and single addresses of both families', () => {
    assert.equal(parseCidr('10.0.0.0/8').text, '10.0.0.0/8');
    assert.equal(parseCidr('192.0.2.7').text, '192.0.2.7/32');
    assert.equal(parseCidr('::1').text, '::1/128');
    assert.equal(parseCidr('2001:DB8::/32').text, '2001:db8::/32');
    assert.equal(parseCidr('0.0.0.0/0').text, '0.0.0.0/0');
    assert.equal(
      parseCidr('::ffff:10.0.0.0/104').text,
      '10.0.0.0/8',
      'an IPv4-mapped range is IPv4',
    );
  });

  const bad: [string, string][] = [
    ['10.0.0.0/33', 'the prefix length of "10.0.0.0/33" must be 0 to 32 for an IPv4 address'],
    ['::/129', 'the prefix length of "::/129" must be 0 to 128 for an IPv6 address'],
    ['10.0.0.0/', 'the prefix length of "10.0.0.0/" must be 0 to 32 for an IPv4 address'],
    ['10.0.0.0/08', 'the prefix length of "10.0.0.0/08" must be 0 to 32 for an IPv4 address'],
    [
      '10.1.0.0/8',
      '"10.1.0.0/8" has address bits set after the /8 prefix; did you mean 10.0.0.0/8?',
    ],
    [
      '2001:db8::1/32',
      '"2001:db8::1/32" has address bits set after the /32 prefix; did you mean 2001:db8::/32?',
    ],
    [
      'example.com/8',
      'expected an IP address or CIDR range like 10.0.0.0/8 or 2001:db8::/32, got "example.com/8"',
    ],
    [
      '10.0.0/8',
      'expected an IP address or CIDR range like 10.0.0.0/8 or 2001:db8::/32, got "10.0.0/8"',
    ],
  ];
  for (const [text, message] of bad) {
    test(`refuses ${JSON.stringify(text)} with one line saying what is wrong`, () => {
      assert.throws(
        () => parseCidr(text),
        (err: unknown) => {
          assert.ok(err instanceof CidrError);
          assert.equal(err.message, message);
          return true;
        },
      );
    });
  }

  test('an address inside a random prefix matches it; flipping a bit inside the prefix does not', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4, 16),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.nat(),
        fc.nat(),
        (size, raw, prefixSeed, flipSeed) => {
          const bytes = raw.slice(0, size);
          const family = size === 4 ? 4 : 6;
          const address: IpAddress = { family, bytes };
          const prefix = prefixSeed % (size * 8 + 1);
          const network = Uint8Array.from(bytes);
          for (let bit = prefix; bit < size * 8; bit++) {
            network[bit >> 3] = (network[bit >> 3] as number) & ~(0x80 >> (bit & 7));
          }
          const cidr = parseCidr(`${formatIp({ family, bytes: network })}/${prefix}`);
          if (cidr.family !== family) return; // an IPv4-mapped range became IPv4: below
          assert.ok(cidrContains(cidr, address));
          if (prefix > 0) {
            const outside = Uint8Array.from(bytes);
            const bit = flipSeed % prefix;
            outside[bit >> 3] = (outside[bit >> 3] as number) ^ (0x80 >> (bit & 7));
            assert.ok(!cidrContains(cidr, { family, bytes: outside }));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('an IPv4-mapped client matches the IPv4 ranges its IPv4 address matches, in both spellings of the range', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 32 }),
        (bytes, prefix) => {
          const v4: IpAddress = { family: 4, bytes };
          const mapped = formatIp(mapIpv4(v4));
          const network = formatIp(v4).split('.').map(Number);
          const masked = Uint8Array.from(network);
          for (let bit = prefix; bit < 32; bit++)
            masked[bit >> 3] = (masked[bit >> 3] as number) & ~(0x80 >> (bit & 7));
          const range = `${formatIp({ family: 4, bytes: masked })}/${prefix}`;
          const mappedRange = `::ffff:${formatIp({ family: 4, bytes: masked })}/${prefix + 96}`;
          for (const r of [range, mappedRange]) {
            const list = new AccessList([parseCidr(r)], []);
            assert.ok(list.check(parseIp(mapped)).allowed, `${mapped} in ${r}`);
            assert.ok(list.check(v4).allowed, `${formatIp(v4)} in ${r}`);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('allow and deny lists', () => {
  const list = (allow: string[], deny: string[]) =>
    new AccessList(allow.map(parseCidr), deny.map(parseCidr));

  test('with no range every address is allowed', () => {
    assert.ok(list([], []).check(ip('203.0.113.9')).allowed);
    assert.ok(list([], []).check(undefined).allowed);
  });

  test('deny wins over allow', () => {
    const l = list(['10.0.0.0/8'], ['10.1.0.0/16']);
    assert.ok(l.check(ip('10.2.3.4')).allowed);
    assert.deepEqual(l.check(ip('10.1.3.4')), {
      allowed: false,
      reason: 'in denied range 10.1.0.0/16',
    });
    assert.deepEqual(l.check(ip('::ffff:10.1.3.4')), {
      allowed: false,
      reason: 'in denied range 10.1.0.0/16',
    });
  });

  test('with any allow, an address outside every allowed range is refused', () => {
    const l = list(['10.0.0.0/8', '2001:db8::/32'], []);
    assert.ok(l.check(ip('2001:db8::5')).allowed);
    assert.deepEqual(l.check(ip('192.0.2.1')), {
      allowed: false,
      reason: 'outside every allowed range',
    });
    assert.equal(l.check(ip('2001:db9::5')).allowed, false);
    assert.equal(l.check(undefined).allowed, false, 'no address cannot be in an allowed range');
  });

  test('a long list (checked through a prefix trie) decides as a walk in order would, naming the same first denied range', () => {
    // Ranges and addresses share a few leading bytes, so they overlap, nest and match often.
    const bytesOf = (size: number) =>
      fc
        .tuple(fc.constantFrom(10, 192), fc.uint8Array({ minLength: 15, maxLength: 15 }))
        .map(([first, rest]) =>
          Uint8Array.from([first, rest[0] ? rest[0] & 3 : 0, ...rest.slice(1)]).slice(0, size),
        );
    const range = fc
      .tuple(fc.constantFrom(4, 16), fc.nat())
      .chain(([size, seed]) =>
        bytesOf(size).map((bytes) => ({ size, bytes, prefix: seed % (size * 8 + 1) })),
      )
      .map(({ size, bytes, prefix }) => {
        const network = Uint8Array.from(bytes);
        for (let bit = prefix; bit < size * 8; bit++)
          network[bit >> 3] = (network[bit >> 3] as number) & ~(0x80 >> (bit & 7));
        return parseCidr(`${formatIp({ family: size === 4 ? 4 : 6, bytes: network })}/${prefix}`);
      });
    const address = fc.tuple(fc.constantFrom(4, 16), fc.boolean()).chain(([size, mapped]) =>
      bytesOf(size).map((bytes): IpAddress => {
        const parsed: IpAddress = { family: size === 4 ? 4 : 6, bytes };
        return mapped ? mapIpv4(parsed) : parsed; // an IPv4-mapped client matches IPv4 ranges
      }),
    );
    const reference = (allow: Cidr[], deny: Cidr[], candidate: IpAddress) => {
      const unmapped = unmapIp(candidate);
      const denied = deny.find((r) => cidrContains(r, unmapped));
      if (denied !== undefined) return { allowed: false, reason: `in denied range ${denied.text}` };
      if (allow.length === 0 || allow.some((r) => cidrContains(r, unmapped)))
        return { allowed: true };
      return { allowed: false, reason: 'outside every allowed range' };
    };
    fc.assert(
      fc.property(
        fc.array(range, { minLength: 0, maxLength: 60 }),
        fc.array(range, { minLength: TRIE_THRESHOLD, maxLength: 60 }),
        fc.array(address, { minLength: 1, maxLength: 20 }),
        (allow, deny, candidates) => {
          const l = new AccessList(allow, deny);
          // Each range's own network address too: it is inside it, whatever the prefix.
          const all = [
            ...candidates,
            ...[...allow, ...deny].map((r): IpAddress => ({ family: r.family, bytes: r.bytes })),
          ];
          for (const candidate of all)
            assert.deepEqual(l.check(candidate), reference(allow, deny, candidate));
          for (const candidate of all)
            assert.deepEqual(
              new AccessList(deny, []).check(candidate),
              reference(deny, [], candidate),
            );
        },
      ),
      { numRuns: 500 },
    );
  });

  test('deny only: everything else is allowed', () => {
    const l = list([], ['192.0.2.7', '::1']);
    assert.equal(l.check(ip('192.0.2.7')).allowed, false);
    assert.equal(l.check(ip('::1')).allowed, false);
    assert.ok(l.check(ip('192.0.2.8')).allowed);
  });
});

describe('connection rate: N/DUR and the token bucket', () => {
  test('parses N/DUR and writes it back', () => {
    assert.deepEqual(parseRate('20/1s'), { count: 20, periodMs: 1000 });
    assert.deepEqual(parseRate('600/1m'), { count: 600, periodMs: 60_000 });
    assert.deepEqual(parseRate('5/250'), { count: 5, periodMs: 250 });
    assert.equal(formatRate(parseRate('600/60s')), '600/1m');
    for (const [text, message] of [
      ['20', 'expected N/DUR with N a whole number of at least 1 (like 20/1s or 600/1m), got "20"'],
      [
        '0/1s',
        'expected N/DUR with N a whole number of at least 1 (like 20/1s or 600/1m), got "0/1s"',
      ],
      ['20/0s', 'the period of "20/0s" must not be 0'],
      [
        '20/1sec',
        'bad period in "20/1sec": expected a whole number with an optional unit ms, s, m or h (like 30s), got "1sec"',
      ],
    ] as const) {
      assert.throws(
        () => parseRate(text),
        (err: unknown) => {
          assert.ok(err instanceof RateError);
          assert.equal(err.message, message);
          return true;
        },
      );
    }
  });

  test('allows a burst of N, then one more per DUR/N, per address', () => {
    let now = 1000;
    const limiter = new RateLimiter(parseRate('4/1s'), { now: () => now });
    for (let i = 0; i < 4; i++) assert.ok(limiter.take('192.0.2.1'), `burst ${i}`);
    assert.equal(limiter.take('192.0.2.1'), false, 'the fifth within the second');
    assert.ok(limiter.take('192.0.2.2'), 'another address has its own bucket');
    now += 249;
    assert.equal(limiter.take('192.0.2.1'), false, 'not yet a whole token');
    now += 1;
    assert.ok(limiter.take('192.0.2.1'), 'a token after DUR/N');
    assert.equal(limiter.take('192.0.2.1'), false);
    now += 10_000;
    for (let i = 0; i < 4; i++)
      assert.ok(limiter.take('192.0.2.1'), 'full again, never more than N');
    assert.equal(limiter.take('192.0.2.1'), false);
  });

  test('refusals do not take tokens, and the clock going back does not add any', () => {
    let now = 0;
    const limiter = new RateLimiter(parseRate('1/100'), { now: () => now });
    assert.ok(limiter.take('a'));
    for (let i = 0; i < 10; i++) assert.equal(limiter.take('a'), false);
    now = 100;
    assert.ok(limiter.take('a'));
    now = 50;
    assert.equal(limiter.take('a'), false);
  });

  test('memory stays bounded: idle buckets are forgotten within 2·DUR, and a spray of addresses is capped', () => {
    let now = 0;
    const limiter = new RateLimiter(parseRate('20/1s'), { now: () => now, maxEntries: 1000 });
    for (let i = 0; i < 100_000; i++) {
      limiter.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      assert.ok(limiter.size <= 1000, `${limiter.size} buckets`);
    }
    assert.ok(limiter.size >= 500, `${limiter.size} buckets`);
    now += 2000;
    assert.ok(limiter.take('192.0.2.1'));
    assert.equal(limiter.size, 1, 'every bucket idle for 2·DUR was full again, so forgotten');
    // Buckets in use are kept: 200 addresses, one connection each per 100 ms.
    for (let round = 0; round < 30; round++) {
      now += 100;
      for (let i = 0; i < 200; i++) limiter.take(`192.0.2.${i}`);
      assert.ok(limiter.size >= 200 && limiter.size <= 201, `${limiter.size} buckets`);
    }
  });

  test('a bucket carried over from the previous generation keeps its level', () => {
    let now = 0;
    const limiter = new RateLimiter(parseRate('4/1s'), { now: () => now });
    assert.ok(limiter.take('other')); // the generations start turning from here
    now = 900;
    for (let i = 0; i < 4; i++) assert.ok(limiter.take('a'));
    now = 1100; // the generations turn: 'a' is now in the previous one
    assert.equal(limiter.take('a'), false, '0.8 tokens after 200 ms');
    now = 1150;
    assert.ok(limiter.take('a'), 'a whole token after 250 ms');
    assert.equal(limiter.take('a'), false);
  });

  test('any sequence of takes matches a reference bucket and never allows more than N + elapsed·N/DUR', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 100 }),
        (count, periodMs, gaps) => {
          let now = 0;
          const limiter = new RateLimiter({ count, periodMs }, { now: () => now });
          let tokens = count;
          let last = 0;
          let allowed = 0;
          for (const gap of gaps) {
            now += gap;
            tokens = Math.min(count, tokens + ((now - last) * count) / periodMs);
            last = now;
            const expected = tokens >= 1 - 1e-9;
            if (expected) tokens -= 1;
            assert.equal(limiter.take('x'), expected, `at ${now}`);
            if (expected) allowed++;
          }
          assert.ok(allowed <= count + Math.floor((now * count) / periodMs));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('open connections per address', () => {
  test('counts up to the limit, and down again on close', () => {
    const open = new ConnectionCount(2);
    assert.ok(open.tryOpen('a'));
    assert.ok(open.tryOpen('a'));
    assert.equal(open.tryOpen('a'), false);
    assert.ok(open.tryOpen('b'));
    open.close('a');
    assert.ok(open.tryOpen('a'));
    open.close('a');
    open.close('a');
    open.close('b');
    assert.equal(open.size, 0, 'an address with no open connection has no entry');
    open.close('never');
    assert.equal(open.size, 0);
  });
});

describe('AccessControl', () => {
  test('refuses denied addresses with denied and over-limit ones with rate_limited, in that order', () => {
    let now = 0;
    const access = new AccessControl(
      {
        allow: [parseCidr('127.0.0.0/8')],
        deny: [parseCidr('127.0.0.9')],
        maxConnectionsPerIp: 2,
        connectionRatePerIp: parseRate('3/1s'),
      },
      { now: () => now },
    );
    assert.deepEqual(access.admit('192.0.2.1'), {
      allowed: false,
      cause: 'denied',
      reason: 'outside every allowed range',
    });
    assert.equal(access.admit('127.0.0.9').allowed, false);
    const first = access.admit('::ffff:127.0.0.2');
    assert.deepEqual(first, { allowed: true, key: '127.0.0.2' });
    assert.deepEqual(access.admit('127.0.0.2'), { allowed: true, key: '127.0.0.2' });
    assert.deepEqual(access.admit('127.0.0.2'), {
      allowed: false,
      cause: 'rate_limited',
      reason: '127.0.0.2 has 2 open connections, the most allowed',
    });
    assert.equal(access.openConnections('127.0.0.2'), 2);
    access.release('127.0.0.2');
    assert.equal(access.admit('127.0.0.2').allowed, true, 'the third token');
    access.release('127.0.0.2');
    assert.deepEqual(access.admit('127.0.0.2'), {
      allowed: false,
      cause: 'rate_limited',
      reason: '127.0.0.2 opens connections faster than 3/1s',
    });
    now += 1000;
    assert.equal(access.admit('127.0.0.2').allowed, true);
  });

  test('update changes the rules for new clients and keeps counting the open ones', () => {
    const access = new AccessControl({ maxConnectionsPerIp: 5 });
    for (let i = 0; i < 3; i++) assert.ok(access.admit('192.0.2.1').allowed);
    access.update({ maxConnectionsPerIp: 3, deny: [parseCidr('192.0.2.2')] });
    assert.equal(access.admit('192.0.2.1').allowed, false, 'already 3 open');
    assert.equal(access.admit('192.0.2.2').allowed, false);
    access.release('192.0.2.1');
    assert.ok(access.admit('192.0.2.1').allowed);
    access.update({});
    assert.equal(access.active, false);
    assert.deepEqual(access.admit('192.0.2.2'), { allowed: true, key: null });
  });

  test('a client without an IP address skips the per-address limits and is refused only by an allow list', () => {
    const limits = new AccessControl({
      maxConnectionsPerIp: 1,
      connectionRatePerIp: parseRate('1/1h'),
    });
    for (let i = 0; i < 3; i++)
      assert.deepEqual(limits.admit(undefined), { allowed: true, key: null });
    assert.deepEqual(limits.admit('fe80::1%lo'), { allowed: true, key: 'fe80::1' });
    const allowList = new AccessControl({ allow: [parseCidr('10.0.0.0/8')] });
    assert.equal(allowList.admit(undefined).allowed, false);
  });
});
