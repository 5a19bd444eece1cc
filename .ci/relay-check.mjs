// node .ci/relay-check.mjs COMMAND [ARG...]: runs an installed `l4proxy` (COMMAND and
// its first arguments) in front of a real echo server on 127.0.0.1, sends 1 MiB of
// random bytes through it, half-closes, and checks that the same bytes came back.
// Exit 0 on success; 1 with one line saying what went wrong. Everything it starts is
// ended by PID; the whole check is bounded to 60 s.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';

const [command, ...prefix] = process.argv.slice(2);
if (command === undefined) {
  console.error('usage: node .ci/relay-check.mjs COMMAND [ARG...]');
  process.exit(2);
}
const fail = (message) => {
  console.error(`relay check: ${message}`);
  process.exit(1);
};
const bound = setTimeout(() => fail('no answer within 60 s'), 60_000);

const upstream = createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
upstream.listen(0, '127.0.0.1');
await once(upstream, 'listening');
const target = `127.0.0.1:${upstream.address().port}`;

const child = spawn(
  command,
  [...prefix, '--listen', '127.0.0.1:0', '--target', target, '--log-format', 'json'],
  { stdio: ['ignore', 'inherit', 'pipe'] },
);
process.on('exit', () => child.exitCode === null && child.kill('SIGKILL'));
child.on('exit', (code, signal) => {
  if (!stopping) fail(`${command} exited early (${code ?? signal})`);
});
let stopping = false;

// The proxy's port, from its `listening` log record.
const port = await new Promise((resolve) => {
  createInterface({ input: child.stderr }).on('line', (line) => {
    process.stderr.write(`  ${line}\n`);
    try {
      const record = JSON.parse(line);
      if (record.msg === 'listening') resolve(Number(String(record.address).split(':').pop()));
    } catch {
      // not a JSON record: shown above, ignored here
    }
  });
});

const sent = randomBytes(1 << 20);
const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
const chunks = [];
client.on('data', (chunk) => chunks.push(chunk));
client.end(sent);
await once(client, 'end');
const digest = (b) => createHash('sha256').update(b).digest('hex');
const received = Buffer.concat(chunks);
if (digest(received) !== digest(sent))
  fail(`${received.length} bytes came back for ${sent.length} sent, or not the same bytes`);

stopping = true;
child.kill('SIGTERM');
const [code] = await once(child, 'exit');
if (code !== 0) fail(`${command} exited ${code} after SIGTERM`);
upstream.close();
clearTimeout(bound);
console.log(`relay check: ${sent.length} bytes through ${command} and back unchanged`);
