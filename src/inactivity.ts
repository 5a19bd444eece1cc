/**
 * The idle and half-close timeouts of a relaying connection, on the context's one
 * Timer (docs/design.md §4).
 *
 * Refreshed lazily: a chunk only moves `lastActivityMs` (and only when a timeout
 * applies at all); the timer is set from the last activity, and when it fires,
 * `inactivityExpired` re-schedules it for the real deadline if bytes moved since.
 * Bytes still draining to a slow reader count as activity, as Node's own socket
 * timeout counts a draining write.
 */
import type { CloseCause } from './close-cause.js';
import type { ListenerConfig } from './config/config.js';
import type { ContextState } from './connection-info.js';
import type { Side } from './endpoint.js';
import type { Timer, TimerSet } from './timer-set.js';

/** WatchedConnection is what the timeouts need of a proxy context (ProxyContext implements it). */
export interface WatchedConnection {
  readonly config: ListenerConfig;
  readonly state: ContextState;
  readonly trace: boolean;
  readonly firstClose: Side | null;
  readonly host: { readonly timers: TimerSet };
  /** lastActivityMs is when bytes last moved either way. */
  lastActivityMs: number;
  /** lastPendingWrites: the bytes held in user space at the last expiry (`buffered`). */
  lastPendingWrites: number;
  /** buffered: the bytes the connection holds in user space now, both ways. */
  readonly buffered: number;
  now(): number;
  traceEvent(side: Side, event: string): void;
}

/** inactivityPeriodMs is the timeout that applies in the connection's state; 0: none. */
function inactivityPeriodMs(connection: WatchedConnection): number {
  const { idleTimeoutMs, halfCloseTimeoutMs } = connection.config;
  if (connection.state === 'half_closed' && halfCloseTimeoutMs > 0) return halfCloseTimeoutMs;
  return idleTimeoutMs;
}

/**
 * armInactivity sets `timer` for the idle (or, half-closed, the half-close) deadline
 * counted from the last activity, or cancels it when no timeout applies. An earlier
 * deadline already set stays.
 */
export function armInactivity<O>(connection: WatchedConnection, timer: Timer<O>): void {
  const timers = connection.host.timers;
  const periodMs = inactivityPeriodMs(connection);
  if (periodMs === 0) {
    if (connection.trace && timer.scheduled) connection.traceEvent('client', 'timer cancelled');
    timers.cancel(timer);
    return;
  }
  const deadline = connection.lastActivityMs + periodMs;
  if (!timer.scheduled || deadline < timer.deadline) {
    timers.schedule(timer, deadline);
    if (connection.trace) {
      const what = connection.state === 'half_closed' ? 'half-close' : 'idle';
      connection.traceEvent('client', `timer armed: ${what} timeout, ${periodMs} ms without bytes`);
    }
  }
}

/**
 * inactivityExpired: `timer` fired while relaying. If bytes moved (or drained) since it
 * was set, it is set again for the real deadline and null is returned; otherwise the
 * cause to close with (`idle_timeout`, `half_close_timeout`).
 */
export function inactivityExpired<O>(
  connection: WatchedConnection,
  timer: Timer<O>,
): CloseCause | null {
  const periodMs = inactivityPeriodMs(connection);
  if (periodMs === 0) return null;
  const now = connection.now();
  // Bytes still moving through our buffers count as activity too: if what we hold for
  // either socket, either way, changed since the last check, a slow peer still takes bytes.
  const pending = connection.buffered;
  if (pending > 0 && pending !== connection.lastPendingWrites) connection.lastActivityMs = now;
  connection.lastPendingWrites = pending;
  const deadline = connection.lastActivityMs + periodMs;
  if (now < deadline) {
    connection.host.timers.schedule(timer, deadline);
    return null;
  }
  if (connection.trace) {
    connection.traceEvent(
      connection.firstClose ?? 'client',
      `timer fired: no bytes for ${periodMs} ms`,
    );
  }
  const halfClosed = connection.state === 'half_closed' && connection.config.halfCloseTimeoutMs > 0;
  return halfClosed ? 'half_close_timeout' : 'idle_timeout';
}
