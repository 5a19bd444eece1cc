#!/usr/bin/env node
/**
 * The `proxy` command: argv → options → createProxy() → listen, plus signals and
 * exit codes (see cli-contract.md in the docs). The only module that reads
 * `process.argv` or calls `process.exit`.
 *
 * Exit status: 0 after a clean shutdown, 2 for a usage error (one line on stderr
 * naming the flag), 1 when the proxy cannot start (the line names the address).
 *
 * Signals are the design's third kind of event: Node delivers them on the event
 * loop (libuv watches them through a self-pipe, as a signalfd would), so a handler
 * here runs between I/O callbacks like any other event.
 */
import { parseArgv, USAGE } from './config/args.js';
import { errorCode } from './errors.js';
import { createProxy, type TcpProxy, VERSION } from './index.js';

function fail(status: 1 | 2, message: string): never {
  process.stderr.write(`proxy: ${message}\n`);
  process.exit(status);
}

async function main(argv: readonly string[]): Promise<void> {
  let command: ReturnType<typeof parseArgv>;
  try {
    command = parseArgv(argv);
  } catch (err) {
    fail(2, err instanceof Error ? err.message : String(err));
  }
  if (command.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command.kind === 'version') {
    process.stdout.write(`proxy ${VERSION}\n`);
    return;
  }

  let proxy: TcpProxy;
  try {
    proxy = createProxy({
      ...command.listener,
      log: { level: command.logLevel, format: command.logFormat },
    });
  } catch (err) {
    fail(2, err instanceof Error ? err.message : String(err));
  }
  try {
    await proxy.listen();
  } catch (err) {
    if (errorCode(err) === 'PROXY_ERR_LISTEN' && err instanceof Error) fail(1, err.message);
    throw err;
  }
  handleSignals(proxy);
}

function handleSignals(proxy: TcpProxy): void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals === 1) {
      proxy.log.info('shutting down', { signal, connections: proxy.connections().length });
      proxy.close({ graceful: true }).then(
        () => {
          proxy.log.info('stopped');
          process.exit(0);
        },
        (err: unknown) => fail(1, `shutdown failed: ${String(err)}`),
      );
    } else {
      // A second signal: do not wait for anything.
      proxy.log.info('closing all connections now', { signal });
      void proxy.close({ graceful: false });
      process.exit(0);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(1, err instanceof Error ? (err.stack ?? err.message) : String(err));
});
