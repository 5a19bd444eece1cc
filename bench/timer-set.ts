/**
 * TimerSet operations per second (`timer-set`), in this process: the heap of
 * src/timer-set.ts with 10,000 live timers (as with 10,000 open connections), against
 * what it replaces, one Node.js `setTimeout` per deadline. In the table the "direct"
 * column is Node's timers and the "proxy" column is the TimerSet.
 *
 * - schedule+cancel: a connect timeout that is set and then cancelled because the
 *   connect succeeded. `scheduleIn` + `cancel` against `setTimeout` + `clearTimeout`.
 * - the same with no other timer live (a proxy whose connections have no idle
 *   timeout): each cancel empties the set, which must not cost a native timer.
 * - reschedule: a live deadline moved later. `scheduleIn` on a scheduled timer (a
 *   sift in the heap) against `Timeout.refresh()`.
 *
 * Both use the real clock (the TimerSet reads `performance.now()` per schedule, as in
 * the proxy). Every deadline is 10 s away, so no timer fires while this runs.
 */
import { Timer, TimerSet } from '../src/timer-set.js';
import type { Row, Scenario, Settings } from './lib.js';

const LIVE = 10_000;
const POOL = 1024;
const DELAY_MS = 10_000;
const BATCH = 1024;
const MAX_OPS = 1e9;

function noop(): void {}

// Runs op in batches until `ms` have passed (or MAX_OPS); returns operations per second.
function opsPerSecond(ms: number, op: (i: number) => void): number {
  const start = performance.now();
  const end = start + ms;
  let ops = 0;
  while (ops < MAX_OPS) {
    for (let j = 0; j < BATCH; j++) op(ops + j);
    ops += BATCH;
    if (performance.now() >= end) break;
  }
  return ops / ((performance.now() - start) / 1000);
}

// Warm up (lets the JIT compile the loop), then measure.
function measure(ms: number, op: (i: number) => void): number {
  opsPerSecond(Math.max(20, ms / 5), op);
  return opsPerSecond(ms, op);
}

interface Figures {
  scheduleCancel: number;
  scheduleCancelAlone: number;
  reschedule: number;
}

function timerSetFigures(ms: number): Figures {
  const pool = Array.from({ length: POOL }, (_, i) => new Timer(i, noop));
  const alone = new TimerSet();
  const scheduleCancelAlone = measure(ms, (i) => {
    const timer = pool[i % POOL] as Timer<number>;
    alone.scheduleIn(timer, DELAY_MS);
    alone.cancel(timer);
  });
  alone.clear();
  const set = new TimerSet();
  const live = Array.from({ length: LIVE }, (_, i) => new Timer(i, noop));
  for (const timer of live) set.scheduleIn(timer, DELAY_MS);
  const scheduleCancel = measure(ms, (i) => {
    const timer = pool[i % POOL] as Timer<number>;
    set.scheduleIn(timer, DELAY_MS);
    set.cancel(timer);
  });
  const reschedule = measure(ms, (i) => {
    set.scheduleIn(live[i % LIVE] as Timer<number>, DELAY_MS);
  });
  set.clear();
  return { scheduleCancel, scheduleCancelAlone, reschedule };
}

function nodeTimerFigures(ms: number): Figures {
  const scheduleCancelAlone = measure(ms, () => {
    clearTimeout(setTimeout(noop, DELAY_MS));
  });
  const live = Array.from({ length: LIVE }, () => setTimeout(noop, DELAY_MS));
  const scheduleCancel = measure(ms, () => {
    clearTimeout(setTimeout(noop, DELAY_MS));
  });
  const reschedule = measure(ms, (i) => {
    (live[i % LIVE] as NodeJS.Timeout).refresh();
  });
  for (const timeout of live) clearTimeout(timeout);
  return { scheduleCancel, scheduleCancelAlone, reschedule };
}

function rows(settings: Settings): Row[] {
  const node = nodeTimerFigures(settings.timerSetMs);
  const ours = timerSetFigures(settings.timerSetMs);
  const scenario = `TimerSet vs setTimeout, ${LIVE} live`;
  return [
    {
      id: 'timer-set.schedule_cancel',
      scenario,
      metric: 'schedule+cancel ops/s',
      direct: node.scheduleCancel,
      proxy: ours.scheduleCancel,
      digits: 0,
    },
    {
      id: 'timer-set.schedule_cancel_alone',
      scenario: 'TimerSet vs setTimeout, none live',
      metric: 'schedule+cancel ops/s',
      direct: node.scheduleCancelAlone,
      proxy: ours.scheduleCancelAlone,
      digits: 0,
    },
    {
      id: 'timer-set.reschedule',
      scenario,
      metric: 'reschedule ops/s',
      direct: node.reschedule,
      proxy: ours.reschedule,
      digits: 0,
    },
  ];
}

/** timerSet is the micro-benchmark scenario. */
export const timerSet: Scenario = {
  ids: ['timer-set'],
  async run(settings, only) {
    return only('timer-set') ? rows(settings) : [];
  },
};
