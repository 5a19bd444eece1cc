import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Logger } from '../src/log.js';

function capture(options: ConstructorParameters<typeof Logger>[0]) {
  const lines: string[] = [];
  const log = new Logger({ ...options, write: (line) => lines.push(line) });
  return { log, lines };
}

test('writes one JSON object per line with time, level, msg and the fields', () => {
  const { log, lines } = capture({ level: 'info', format: 'json' });
  log.info('connection closed', {
    cause: 'client_fin',
    bytes_to_upstream: 5,
    upstream: null,
    skip: undefined,
  });
  assert.equal(lines.length, 1);
  const record = JSON.parse(lines[0] ?? '');
  assert.equal(record.level, 'info');
  assert.equal(record.msg, 'connection closed');
  assert.equal(record.cause, 'client_fin');
  assert.equal(record.bytes_to_upstream, 5);
  assert.equal(record.upstream, null);
  assert.ok(!('skip' in record));
  assert.ok(!Number.isNaN(Date.parse(record.time)));
});

test('writes text as time LEVEL msg key=value, quoting values with spaces', () => {
  const { log, lines } = capture({ level: 'debug', format: 'text' });
  log.debug('connect failed', { id: '7', upstream: '127.0.0.1:9', why: 'two words', empty: '' });
  assert.match(
    lines[0] ?? '',
    /^\S+Z DEBUG connect failed id=7 upstream=127\.0\.0\.1:9 why="two words" empty=""$/,
  );
});

test('drops records below the level and tells which levels are enabled', () => {
  const { log, lines } = capture({ level: 'warn' });
  log.info('not shown');
  log.debug('not shown');
  log.warn('shown');
  log.error('shown too');
  assert.equal(lines.length, 2);
  assert.equal(log.enabled('trace'), false);
  assert.equal(log.enabled('error'), true);
  const silent = capture({ level: 'silent' });
  silent.log.error('nothing');
  assert.equal(silent.lines.length, 0);
});

test('never throws when the sink fails (a closed stderr must not crash the proxy)', () => {
  const log = new Logger({
    write: () => {
      throw Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    },
  });
  assert.doesNotThrow(() => log.info('still fine'));
});
