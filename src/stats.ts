/**
 * Counters of one listener, and their snapshot. No I/O and no timers: the listener
 * and its proxy contexts bump the counters; `snapshot()` copies them out.
 *
 * Bytes are bytes delivered (accepted by the kernel for the receiving socket). Those of
 * connections still open are read from the connection's sockets when asked for (no
 * work per chunk) and folded into these totals when it closes; a snapshot adds the
 * live ones it is given.
 */
import type { CloseCause } from './close-cause.js';

/** StatsSnapshot is a plain copy of the counters, safe to serialize. */
export interface StatsSnapshot {
  /** accepted counts every accepted client, including those closed at once (max_connections). */
  accepted: number;
  /** active is the number of proxied connections open now. */
  active: number;
  /** closed counts closed connections by cause. */
  closed: Partial<Record<CloseCause, number>>;
  /** bytesToUpstream counts bytes delivered to upstreams (their kernels accepted them), open connections included. */
  bytesToUpstream: number;
  /** bytesToClient counts bytes delivered to clients, open connections included. */
  bytesToClient: number;
  /** connectFailures counts failed connect attempts by error code (ECONNREFUSED, ETIMEDOUT, ...). */
  connectFailures: Record<string, number>;
  /** acceptErrors counts errors from accept() by code (EMFILE, ENFILE, ...). */
  acceptErrors: Record<string, number>;
  /** targets holds each target's counters, by address (`host:port`). */
  targets: Record<string, TargetCounters>;
}

/** TargetCounters count what happened when dialing one target. */
export interface TargetCounters {
  /** connects counts successful connects. */
  connects: number;
  /** failures counts failed connect attempts by error code. */
  failures: Record<string, number>;
}

function bump(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Stats holds one listener's counters. */
export class Stats {
  accepted = 0;
  active = 0;
  bytesToUpstream = 0;
  bytesToClient = 0;
  readonly #closed = new Map<CloseCause, number>();
  readonly #connectFailures = new Map<string, number>();
  readonly #acceptErrors = new Map<string, number>();
  readonly #targets = new Map<string, { connects: number; failures: Map<string, number> }>();

  countClosed(cause: CloseCause, bytesToUpstream: number, bytesToClient: number): void {
    bump(this.#closed, cause);
    this.bytesToUpstream += bytesToUpstream;
    this.bytesToClient += bytesToClient;
  }

  countConnect(target: string): void {
    this.#target(target).connects += 1;
  }

  countConnectFailure(code: string, target: string): void {
    bump(this.#connectFailures, code);
    bump(this.#target(target).failures, code);
  }

  #target(address: string): { connects: number; failures: Map<string, number> } {
    let counters = this.#targets.get(address);
    if (counters === undefined) {
      counters = { connects: 0, failures: new Map() };
      this.#targets.set(address, counters);
    }
    return counters;
  }

  countAcceptError(code: string): void {
    bump(this.#acceptErrors, code);
  }

  /** snapshot copies the counters, adding the bytes of connections that are still open. */
  snapshot(liveBytesToUpstream = 0, liveBytesToClient = 0): StatsSnapshot {
    return {
      accepted: this.accepted,
      active: this.active,
      closed: Object.fromEntries(this.#closed),
      bytesToUpstream: this.bytesToUpstream + liveBytesToUpstream,
      bytesToClient: this.bytesToClient + liveBytesToClient,
      connectFailures: Object.fromEntries(this.#connectFailures),
      acceptErrors: Object.fromEntries(this.#acceptErrors),
      targets: Object.fromEntries(
        Array.from(this.#targets, ([address, t]) => [
          address,
          { connects: t.connects, failures: Object.fromEntries(t.failures) },
        ]),
      ),
    };
  }
}

/** addCounts adds each count of `from` to the same key of `into`. */
export function addCounts(
  into: Record<string, number>,
  from: Readonly<Record<string, number | undefined>>,
): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + (n ?? 0);
}

/** emptySnapshot is a snapshot with every counter at zero. */
export function emptySnapshot(): StatsSnapshot {
  return {
    accepted: 0,
    active: 0,
    closed: {},
    bytesToUpstream: 0,
    bytesToClient: 0,
    connectFailures: {},
    acceptErrors: {},
    targets: {},
  };
}

/** sumSnapshots adds several listeners' snapshots into one. */
export function sumSnapshots(snapshots: readonly StatsSnapshot[]): StatsSnapshot {
  const total = emptySnapshot();
  for (const s of snapshots) {
    total.accepted += s.accepted;
    total.active += s.active;
    total.bytesToUpstream += s.bytesToUpstream;
    total.bytesToClient += s.bytesToClient;
    addCounts(total.closed, s.closed);
    addCounts(total.connectFailures, s.connectFailures);
    addCounts(total.acceptErrors, s.acceptErrors);
    for (const [address, t] of Object.entries(s.targets)) {
      const into = total.targets[address] ?? { connects: 0, failures: {} };
      total.targets[address] = into;
      into.connects += t.connects;
      addCounts(into.failures, t.failures);
    }
  }
  return total;
}
