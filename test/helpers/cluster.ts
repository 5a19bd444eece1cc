/**
 * Test helpers for `--workers N` end to end: start the built CLI (dist/cli.js, so run
 * `npm run build` first) as a primary that forks its workers with node:cluster, wait
 * until every worker listens, and find each worker's PID in the primary's
 * `worker started` records. The workers are killed by PID after the test; spawnCli
 * kills the primary (its workers would follow it anyway).
 */
import type { TestContext } from 'node:test';
import { type CliChild, type LogRecord, spawnCli } from './cli.js';

/**
 * WorkerRecord is a log record with the fields the cluster adds (`worker`, `pid`,
 * `workers`, `how`, `connections_active`) and the `target` of a health record.
 */
export type WorkerRecord = LogRecord & {
  worker?: number;
  pid?: number;
  workers?: number;
  how?: string;
  connections_active?: number;
  target?: string;
};

/** ClusterChild is a `--workers N` primary as spawned, with each worker's PID. */
export interface ClusterChild extends CliChild {
  /** pids maps worker id to PID, from the `worker started` records so far. */
  pids(): Map<number, number>;
  /** wrecords is records(), typed with the cluster's fields. */
  wrecords(): WorkerRecord[];
}

/** Cluster is a running `--workers N` primary whose workers listen: the bound port. */
export interface Cluster extends ClusterChild {
  port: number;
}

/** killQuietly sends `signal` (default SIGKILL) to `pid`, if that process is still there. */
export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * spawnCluster starts the CLI with `args` (which give `--workers`) plus
 * `--log-format json`, and kills every worker it started by PID after the test. It
 * does not wait for anything.
 */
export function spawnCluster(t: TestContext, args: readonly string[]): ClusterChild {
  const cli = spawnCli(t, [...args, '--log-format', 'json']);
  const wrecords = (): WorkerRecord[] => cli.records() as WorkerRecord[];
  const pids = (): Map<number, number> =>
    new Map(
      wrecords()
        .filter((r) => r.msg === 'worker started')
        .map((r) => [r.worker as number, r.pid as number]),
    );
  t.after(() => {
    for (const pid of pids().values()) killQuietly(pid);
  });
  return Object.assign(cli, { pids, wrecords });
}

/**
 * startCluster is spawnCluster with `args` that also say what to listen on; it waits
 * until every worker listens (`workers listening`, then the `listening` record whose
 * address gives the port).
 */
export async function startCluster(t: TestContext, args: readonly string[]): Promise<Cluster> {
  const cli = spawnCluster(t, args);
  await cli.waitForRecord((r) => r.msg === 'workers listening', 10_000, 'every worker to listen');
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 1000, 'listening');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);
  return Object.assign(cli, { port });
}
