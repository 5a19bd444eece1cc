import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FLUSH_AFTER_MS, isoTime, LineGatherer, Logger, PIPE_BUF } from '../src/log.js';
import { waitFor } from './helpers/net.js';

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

test('spells record times as toISOString does, within a second, across seconds and past year 9999', () => {
  const start = Date.UTC(2026, 11, 31, 23, 59, 58, 990);
  // Every millisecond for three seconds (the cache turns over twice), then back in time.
  for (let ms = start; ms < start + 3000; ms++)
    assert.equal(isoTime(ms), new Date(ms).toISOString(), `at ${ms}`);
  for (const ms of [start, 0, 7, 999, 1000, 86_399_999, Date.UTC(10_000, 0, 1, 0, 0, 0, 5)])
    assert.equal(isoTime(ms), new Date(ms).toISOString(), `at ${ms}`);
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

// The default sink (stderr) gathers lines and writes them together. These run the
// built logger in a child process and watch its stderr pipe.
async function runChild(code: string): Promise<{ chunks: string[]; ms: number }> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const module = fileURLToPath(new URL('../dist/log.js', import.meta.url));
  const script = `const { Logger } = await import(${JSON.stringify(module)});
    const log = new Logger({ level: 'info' });
    ${code}`;
  const started = Date.now();
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const chunks: string[] = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => chunks.push(chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  return { chunks, ms: Date.now() - started };
}

function linesOf(chunks: string[]): string[] {
  return chunks
    .join('')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' ').slice(1).join(' '));
}

test('stderr lines logged a few ms apart go out in one write', async () => {
  // Two lines 5 ms apart, then the process stays up for a while: both must arrive in
  // one chunk (one write() of under PIPE_BUF bytes is read whole), long before exit.
  // On a busy machine the second line may come later than planned; a run where the
  // two lines' own timestamps are further apart than FLUSH_AFTER_MS proves nothing
  // and is run again (at most 5 runs).
  for (let run = 1; ; run++) {
    const { chunks } = await runChild(`
      log.info('first');
      setTimeout(() => log.info('second'), 5);
      setTimeout(() => {}, 1500);`);
    assert.deepEqual(linesOf(chunks), ['INFO first', 'INFO second']);
    const [first, second] = chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => Date.parse(l.split(' ')[0] ?? ''));
    const apartMs = (second ?? Number.NaN) - (first ?? Number.NaN);
    assert.ok(Number.isFinite(apartMs), `timestamps in ${JSON.stringify(chunks)}`);
    if (apartMs >= FLUSH_AFTER_MS && run < 5) continue;
    assert.ok(apartMs < FLUSH_AFTER_MS, `the lines were ${apartMs} ms apart in all 5 runs`);
    assert.equal(chunks.length, 1, `one write, got ${JSON.stringify(chunks)}`);
    return;
  }
});

test('a pending stderr line is written while the process is up, and when it exits', async () => {
  // Logged, then the process stays up for 3 s: the line must come while it is up.
  const alive = await runChild(`
    log.info('while up');
    setTimeout(() => process.stderr.write('END\\n'), 3000);`);
  assert.deepEqual(alive.chunks.join('').split('\n').filter(Boolean).at(-1), 'END');
  assert.ok(alive.chunks[0]?.includes('while up'), 'the line came before END');
  // Logged right before the process ends (the flush timer is unref'd): written on exit.
  const ending = await runChild(`log.info('last words');`);
  assert.deepEqual(linesOf(ending.chunks), ['INFO last words']);
  const exiting = await runChild(`log.info('exit now'); process.exit(0);`);
  assert.deepEqual(linesOf(exiting.chunks), ['INFO exit now']);
});

test('gathered lines are written in pieces of whole lines of at most PIPE_BUF bytes, in order', () => {
  // What keeps lines of several workers sharing one stderr pipe from interleaving.
  const pieces: string[] = [];
  const gatherer = new LineGatherer((text) => pieces.push(text));
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ${'x'.repeat(i % 97)}`);
  const long = 'L'.repeat(PIPE_BUF + 10);
  for (const line of lines.slice(0, 100)) gatherer.add(line);
  gatherer.add(long);
  for (const line of lines.slice(100)) gatherer.add(line);
  gatherer.flush();
  assert.ok(pieces.length > 1, 'more than one piece');
  for (const piece of pieces) {
    assert.ok(piece.endsWith('\n'), 'a piece ends with a whole line');
    if (!piece.includes(long)) assert.ok(Buffer.byteLength(piece) <= PIPE_BUF, 'a piece fits');
    else assert.equal(piece, `${long}\n`, 'a line longer than PIPE_BUF goes alone');
  }
  assert.deepEqual(pieces.join('').split('\n').slice(0, -1), [
    ...lines.slice(0, 100),
    long,
    ...lines.slice(100),
  ]);
});

test('gathered lines wait for FLUSH_AFTER_MS at most, then go out in one piece', async () => {
  const pieces: string[] = [];
  const gatherer = new LineGatherer((text) => pieces.push(text));
  gatherer.add('a');
  gatherer.add('b');
  assert.deepEqual(pieces, [], 'nothing written at once');
  await new Promise((resolve) => setTimeout(resolve, FLUSH_AFTER_MS + 50));
  assert.deepEqual(pieces, ['a\nb\n']);
});

test('lines after a piece went out (by the timer or by flush) go out after FLUSH_AFTER_MS too', async () => {
  const pieces: string[] = [];
  const gatherer = new LineGatherer((text) => pieces.push(text));
  gatherer.add('a');
  await waitFor(() => pieces.length === 1, 5000, 'the first piece');
  gatherer.add('b'); // the timer that fired is armed again
  assert.deepEqual(pieces, ['a\n'], 'not written at once');
  await waitFor(() => pieces.length === 2, 5000, 'the second piece');
  gatherer.add('c');
  gatherer.flush(); // written now; its timer still runs
  gatherer.add('d');
  assert.deepEqual(pieces, ['a\n', 'b\n', 'c\n']);
  await waitFor(() => pieces.length === 4, 5000, 'the piece after a flush');
  assert.deepEqual(pieces, ['a\n', 'b\n', 'c\n', 'd\n']);
});
