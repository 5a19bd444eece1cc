/**
 * The timer set, driven by a hand-advanced fake clock. The fake records the single
 * native timer the set may have armed, so the tests can check both what fires and
 * how the set uses the one native timer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type Clock, Timer, TimerSet } from '../src/timer-set.js';

const MAX_NATIVE_DELAY_MS = 2 ** 31 - 1;

interface NativeTimer {
  readonly id: number;
  readonly callback: () => void;
  readonly delayMs: number;
  readonly due: number;
}

/** FakeClock: `now` moves only through advance(); at most one native timer is tracked. */
class FakeClock implements Clock {
  #now = 0;
  #nextId = 1;
  armed: NativeTimer | undefined;
  /** setCount and clearCount count calls that armed or cleared a live native timer. */
  setCount = 0;
  clearCount = 0;
  /** overlaps counts setTimer calls made while another native timer was still armed. */
  overlaps = 0;
  /** delays lists the delay of every setTimer call, in order. */
  readonly delays: number[] = [];

  now(): number {
    return this.#now;
  }

  setTimer(callback: () => void, delayMs: number): unknown {
    if (this.armed !== undefined) this.overlaps += 1;
    const id = this.#nextId++;
    this.armed = { id, callback, delayMs, due: this.#now + delayMs };
    this.setCount += 1;
    this.delays.push(delayMs);
    return id;
  }

  clearTimer(handle: unknown): void {
    if (this.armed !== undefined && this.armed.id === handle) {
      this.armed = undefined;
      this.clearCount += 1;
    }
  }

  /** fireArmed runs the armed native callback once, at the current time. */
  fireArmed(): void {
    const native = this.armed;
    assert.ok(native !== undefined, 'a native timer is armed');
    this.armed = undefined;
    native.callback();
  }

  /** stall moves time by `ms` without firing anything, as when the event loop is blocked. */
  stall(ms: number): void {
    this.#now += ms;
  }

  /** advance moves time by `ms`, firing the native timer at its due time whenever it is due. */
  advance(ms: number): void {
    const target = this.#now + ms;
    // Bounded: a set that re-arms for "now" forever would otherwise hang the test.
    for (let wakeUps = 0; this.armed !== undefined && this.armed.due <= target; wakeUps++) {
      assert.ok(wakeUps < 10_000, 'the native timer keeps firing without time passing');
      this.#now = Math.max(this.#now, this.armed.due);
      this.fireArmed();
    }
    this.#now = target;
  }
}

function setup(): { clock: FakeClock; set: TimerSet; fired: string[] } {
  const clock = new FakeClock();
  return { clock, set: new TimerSet(clock), fired: [] };
}

function recorder(fired: string[], name: string): Timer<string> {
  return new Timer(name, (owner) => fired.push(owner));
}

describe('TimerSet ordering', () => {
  test('fires timers in deadline order whatever order they were scheduled in', () => {
    const { clock, set, fired } = setup();
    const deadlines: [string, number][] = [
      ['d', 40],
      ['a', 10],
      ['e', 50],
      ['c', 30],
      ['b', 20],
    ];
    for (const [name, deadline] of deadlines) set.schedule(recorder(fired, name), deadline);
    clock.advance(100);
    assert.deepEqual(fired, ['a', 'b', 'c', 'd', 'e']);
    assert.equal(set.size, 0);
  });

  test('fires a timer only once its deadline has passed, and only once', () => {
    const { clock, set, fired } = setup();
    const timer = recorder(fired, 'a');
    set.scheduleIn(timer, 25);
    clock.advance(24);
    assert.deepEqual(fired, []);
    assert.equal(timer.scheduled, true);
    clock.advance(1);
    assert.deepEqual(fired, ['a']);
    assert.equal(timer.scheduled, false);
    clock.advance(1000);
    assert.deepEqual(fired, ['a']);
  });

  test('fires every timer that is due in a single wake-up', () => {
    const { clock, set, fired } = setup();
    for (const [name, deadline] of [
      ['b', 7],
      ['a', 5],
      ['c', 9],
    ] as const) {
      set.schedule(recorder(fired, name), deadline);
    }
    const setsBefore = clock.setCount;
    // The event loop was blocked past all three deadlines: the native timer fires once, late.
    clock.stall(20);
    clock.fireArmed();
    assert.deepEqual(fired, ['a', 'b', 'c']);
    assert.equal(clock.setCount, setsBefore, 'nothing is left to arm for');
    assert.equal(clock.armed, undefined);
  });

  test('fires a timer scheduled for a deadline already in the past on the next wake-up', () => {
    const { clock, set, fired } = setup();
    clock.advance(100);
    set.schedule(recorder(fired, 'late'), 50);
    assert.equal(clock.armed?.delayMs, 0);
    clock.advance(0);
    assert.deepEqual(fired, ['late']);
  });

  test('reports nextDeadline as the earliest deadline, or Infinity when empty', () => {
    const { set, fired } = setup();
    assert.equal(set.nextDeadline, Number.POSITIVE_INFINITY);
    const a = recorder(fired, 'a');
    set.schedule(a, 30);
    set.schedule(recorder(fired, 'b'), 20);
    assert.equal(set.nextDeadline, 20);
    set.clear();
    assert.equal(set.nextDeadline, Number.POSITIVE_INFINITY);
    assert.equal(a.scheduled, false);
  });
});

describe('TimerSet native timer', () => {
  test('arms one native timer for the earliest deadline', () => {
    const { clock, set, fired } = setup();
    set.schedule(recorder(fired, 'a'), 100);
    assert.equal(clock.armed?.delayMs, 100);
    assert.equal(clock.setCount, 1);
  });

  test('re-arms the native timer when an earlier deadline is scheduled', () => {
    const { clock, set, fired } = setup();
    set.schedule(recorder(fired, 'a'), 100);
    set.schedule(recorder(fired, 'b'), 50);
    assert.equal(clock.armed?.delayMs, 50);
    assert.equal(clock.setCount, 2);
    assert.equal(clock.clearCount, 1, 'the timer for 100 was cleared before arming for 50');
    assert.equal(clock.overlaps, 0);
  });

  test('leaves the native timer alone when a later deadline is scheduled', () => {
    const { clock, set, fired } = setup();
    set.schedule(recorder(fired, 'a'), 50);
    set.schedule(recorder(fired, 'b'), 100);
    set.schedule(recorder(fired, 'c'), 50);
    assert.equal(clock.setCount, 1);
    assert.equal(clock.armed?.delayMs, 50);
  });

  test('leaves the native timer armed when the last timer is cancelled; it wakes once for nothing', () => {
    const { clock, set, fired } = setup();
    const a = recorder(fired, 'a');
    const b = recorder(fired, 'b');
    set.schedule(a, 10);
    set.schedule(b, 20);
    set.cancel(a);
    assert.notEqual(clock.armed, undefined, 'b still needs a wake-up');
    set.cancel(b);
    assert.equal(set.size, 0);
    assert.equal(clock.clearCount, 0, 'cancelling never clears the native timer');
    // A new timer later than the armed one needs no new native timer either.
    set.schedule(a, 30);
    set.cancel(a);
    assert.equal(clock.setCount, 1, 'one native timer for all of it');
    clock.advance(100);
    assert.deepEqual(fired, []);
    assert.equal(clock.armed, undefined, 'not re-armed once the set is empty');
  });

  test('clears the native timer on clear()', () => {
    const { clock, set, fired } = setup();
    set.schedule(recorder(fired, 'a'), 10);
    set.clear();
    assert.equal(clock.armed, undefined);
    clock.advance(100);
    assert.deepEqual(fired, []);
  });

  test('leaves no native timer armed once every timer has fired', () => {
    const { clock, set, fired } = setup();
    set.schedule(recorder(fired, 'a'), 10);
    set.schedule(recorder(fired, 'b'), 20);
    clock.advance(20);
    assert.deepEqual(fired, ['a', 'b']);
    assert.equal(clock.armed, undefined);
    assert.equal(clock.overlaps, 0);
  });

  test('re-arms for the next deadline after waking for a cancelled one', () => {
    const { clock, set, fired } = setup();
    const a = recorder(fired, 'a');
    set.schedule(a, 10);
    set.schedule(recorder(fired, 'b'), 30);
    set.cancel(a);
    clock.advance(10);
    assert.deepEqual(fired, []);
    assert.equal(clock.armed?.delayMs, 20);
    clock.advance(20);
    assert.deepEqual(fired, ['b']);
  });

  test('arms the native timer for at most 2^31-1 ms and reaches a later deadline in hops', () => {
    const { clock, set, fired } = setup();
    const far = 2 ** 32;
    set.schedule(recorder(fired, 'far'), far);
    assert.equal(clock.armed?.delayMs, MAX_NATIVE_DELAY_MS);
    clock.advance(MAX_NATIVE_DELAY_MS);
    assert.deepEqual(fired, [], 'the first hop is not the deadline');
    assert.ok((clock.armed?.delayMs ?? 0) <= MAX_NATIVE_DELAY_MS);
    clock.advance(far - MAX_NATIVE_DELAY_MS - 1);
    assert.deepEqual(fired, []);
    clock.advance(1);
    assert.deepEqual(fired, ['far']);
    for (const delay of clock.delays) assert.ok(delay <= MAX_NATIVE_DELAY_MS);
  });

  test('arms exactly 2^31-1 ms for a deadline exactly that far away', () => {
    const { clock, set, fired } = setup();
    set.scheduleIn(recorder(fired, 'a'), MAX_NATIVE_DELAY_MS);
    assert.equal(clock.armed?.delayMs, MAX_NATIVE_DELAY_MS);
    clock.advance(MAX_NATIVE_DELAY_MS);
    assert.deepEqual(fired, ['a']);
  });

  test('re-arms earlier when a near deadline joins a far one beyond 2^31-1 ms', () => {
    const { clock, set, fired } = setup();
    set.schedule(recorder(fired, 'far'), Number.MAX_SAFE_INTEGER);
    set.schedule(recorder(fired, 'near'), 5);
    assert.equal(clock.armed?.delayMs, 5);
    clock.advance(5);
    assert.deepEqual(fired, ['near']);
    assert.equal(clock.armed?.delayMs, MAX_NATIVE_DELAY_MS);
  });

  test('rounds a fractional delay up so the wake-up is never before the deadline', () => {
    const { clock, set, fired } = setup();
    set.schedule(recorder(fired, 'a'), 10.25);
    assert.equal(clock.armed?.delayMs, 11);
    clock.advance(11);
    assert.deepEqual(fired, ['a']);
  });
});

describe('TimerSet cancel and reschedule', () => {
  test('cancelling a timer twice is harmless', () => {
    const { clock, set, fired } = setup();
    const a = recorder(fired, 'a');
    set.schedule(a, 10);
    set.schedule(recorder(fired, 'b'), 20);
    set.cancel(a);
    set.cancel(a);
    assert.equal(a.index, -1);
    assert.equal(set.size, 1);
    clock.advance(30);
    assert.deepEqual(fired, ['b']);
  });

  test('cancelling a timer that was never scheduled is harmless', () => {
    const { set, fired } = setup();
    set.schedule(recorder(fired, 'a'), 10);
    set.cancel(recorder(fired, 'never'));
    assert.equal(set.size, 1);
  });

  test('cancelling the earliest timer keeps the others in order', () => {
    const { clock, set, fired } = setup();
    const timers = ['a', 'b', 'c', 'd', 'e', 'f'].map((name) => recorder(fired, name));
    for (const [i, timer] of timers.entries()) set.schedule(timer, (i + 1) * 10);
    const [first] = timers;
    assert.ok(first !== undefined);
    set.cancel(first);
    assert.equal(set.nextDeadline, 20);
    clock.advance(100);
    assert.deepEqual(fired, ['b', 'c', 'd', 'e', 'f']);
  });

  test('cancelling a timer in the middle of the heap keeps the others in order', () => {
    const { clock, set, fired } = setup();
    const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const timers = names.map((name) => recorder(fired, name));
    // Schedule in reverse so the heap is shuffled, then remove interior slots.
    for (const [i, timer] of [...timers.entries()].reverse()) set.schedule(timer, (i + 1) * 10);
    for (const name of ['c', 'f']) {
      const timer = timers[names.indexOf(name)];
      assert.ok(timer !== undefined);
      set.cancel(timer);
    }
    assert.equal(set.size, 6);
    clock.advance(100);
    assert.deepEqual(fired, ['a', 'b', 'd', 'e', 'g', 'h']);
  });

  test('cancelling the last slot of the heap keeps the others in order', () => {
    const { clock, set, fired } = setup();
    const timers = ['a', 'b', 'c'].map((name) => recorder(fired, name));
    for (const [i, timer] of timers.entries()) set.schedule(timer, (i + 1) * 10);
    const last = timers.find((t) => t.index === set.size - 1);
    assert.ok(last !== undefined);
    set.cancel(last);
    clock.advance(100);
    assert.deepEqual(
      fired,
      ['a', 'b', 'c'].filter((name) => name !== last.owner),
    );
  });

  test('rescheduling a timer earlier moves it ahead of the others', () => {
    const { clock, set, fired } = setup();
    set.schedule(recorder(fired, 'a'), 20);
    set.schedule(recorder(fired, 'b'), 30);
    const c = recorder(fired, 'c');
    set.schedule(c, 40);
    set.schedule(c, 10);
    assert.equal(set.size, 3, 'rescheduling does not add a second entry');
    assert.equal(clock.armed?.delayMs, 10);
    clock.advance(100);
    assert.deepEqual(fired, ['c', 'a', 'b']);
  });

  test('rescheduling the earliest timer later moves it behind the others', () => {
    const { clock, set, fired } = setup();
    const a = recorder(fired, 'a');
    set.schedule(a, 10);
    set.schedule(recorder(fired, 'b'), 20);
    set.schedule(recorder(fired, 'c'), 30);
    set.schedule(a, 35);
    assert.equal(set.size, 3);
    assert.equal(set.nextDeadline, 20);
    clock.advance(10);
    assert.deepEqual(fired, [], 'the early wake-up for the old deadline fires nothing');
    clock.advance(90);
    assert.deepEqual(fired, ['b', 'c', 'a']);
  });

  test('rescheduling a timer to its current deadline changes nothing', () => {
    const { clock, set, fired } = setup();
    const a = recorder(fired, 'a');
    set.schedule(a, 10);
    set.schedule(a, 10);
    assert.equal(set.size, 1);
    assert.equal(clock.setCount, 1);
    clock.advance(10);
    assert.deepEqual(fired, ['a']);
  });
});

describe('TimerSet callbacks', () => {
  test('a callback that reschedules itself for now runs once per expiry, not in a loop', () => {
    const { clock, set } = setup();
    let calls = 0;
    const timer = new Timer(null, (_owner, self) => {
      calls += 1;
      set.schedule(self, set.now());
    });
    set.schedule(timer, 0);
    clock.fireArmed();
    assert.equal(calls, 1, 'one expiry runs the callback once');
    assert.equal(timer.scheduled, true);
    assert.equal(clock.armed?.delayMs, 0, 'the next run waits for the next wake-up');
    clock.fireArmed();
    assert.equal(calls, 2);
  });

  test('a callback that reschedules another due timer into the future postpones it', () => {
    const { clock, set, fired } = setup();
    const b = recorder(fired, 'b');
    const a = new Timer('a', (owner) => {
      fired.push(owner);
      set.schedule(b, 50);
    });
    set.schedule(a, 10);
    set.schedule(b, 20);
    clock.advance(20);
    assert.deepEqual(fired, ['a']);
    clock.advance(30);
    assert.deepEqual(fired, ['a', 'b']);
  });

  test('a callback that reschedules another timer due in the same wake-up postpones it', () => {
    const { clock, set, fired } = setup();
    const b = recorder(fired, 'b');
    const a = new Timer('a', (owner) => {
      fired.push(owner);
      set.schedule(b, set.now() + 30);
    });
    set.schedule(a, 10);
    set.schedule(b, 20);
    // The event loop was blocked until 20, so one wake-up finds both a and b due.
    clock.stall(20);
    clock.fireArmed();
    assert.deepEqual(fired, ['a']);
    assert.equal(b.scheduled, true);
    clock.advance(29);
    assert.deepEqual(fired, ['a']);
    clock.advance(1);
    assert.deepEqual(fired, ['a', 'b']);
  });

  test('a callback that cancels a timer which is not yet due prevents it from firing', () => {
    const { clock, set, fired } = setup();
    const b = recorder(fired, 'b');
    const a = new Timer('a', (owner) => {
      fired.push(owner);
      set.cancel(b);
    });
    set.schedule(a, 10);
    set.schedule(b, 20);
    clock.advance(10);
    clock.advance(10);
    assert.deepEqual(fired, ['a']);
  });

  test('a callback that cancels another timer due in the same wake-up prevents it from firing', () => {
    const { clock, set, fired } = setup();
    const b = recorder(fired, 'b');
    const a = new Timer('a', (owner) => {
      fired.push(owner);
      set.cancel(b);
    });
    set.schedule(a, 10);
    set.schedule(b, 20);
    // The event loop was blocked until 20, so one wake-up finds both a and b due.
    clock.stall(20);
    clock.fireArmed();
    assert.deepEqual(fired, ['a'], 'b was cancelled by a and must not fire');
    assert.equal(b.scheduled, false);
  });

  test('a callback that clears the set prevents the other due timers from firing', () => {
    const { clock, set, fired } = setup();
    const clearing = (owner: string): void => {
      fired.push(owner);
      set.clear();
    };
    set.schedule(new Timer('a', clearing), 10);
    set.schedule(new Timer('b', clearing), 10);
    clock.advance(10);
    // a and b tie; whichever runs first clears the set, so exactly one fires.
    assert.equal(fired.length, 1);
  });

  test('a callback sees its own timer as no longer scheduled', () => {
    const { clock, set } = setup();
    let seen: boolean | undefined;
    const timer = new Timer(null, (_owner, self) => {
      seen = self.scheduled;
    });
    set.schedule(timer, 5);
    clock.advance(5);
    assert.equal(seen, false);
  });

  test('a callback that schedules a new timer gets it armed', () => {
    const { clock, set, fired } = setup();
    const later = recorder(fired, 'later');
    set.schedule(
      new Timer('first', (owner) => {
        fired.push(owner);
        set.scheduleIn(later, 15);
      }),
      10,
    );
    clock.advance(10);
    assert.equal(clock.armed?.delayMs, 15);
    clock.advance(15);
    assert.deepEqual(fired, ['first', 'later']);
    assert.equal(clock.overlaps, 0);
  });
});

describe('TimerSet lazy refresh', () => {
  interface IdleOwner {
    lastActivity: number;
    readonly idleTimeoutMs: number;
    readonly expiredAt: number[];
    readonly wakeUps: number[];
  }

  // The owner pattern the module comment describes: activity only records the time;
  // an early wake-up re-schedules for the real deadline.
  function idleTimer(set: TimerSet): Timer<IdleOwner> {
    const owner: IdleOwner = { lastActivity: 0, idleTimeoutMs: 100, expiredAt: [], wakeUps: [] };
    return new Timer(owner, (o, self) => {
      const now = set.now();
      o.wakeUps.push(now);
      const deadline = o.lastActivity + o.idleTimeoutMs;
      if (now < deadline) set.schedule(self, deadline);
      else o.expiredAt.push(now);
    });
  }

  test('an owner woken early by stale activity fires only once the real deadline passes', () => {
    const { clock, set } = setup();
    const timer = idleTimer(set);
    set.scheduleIn(timer, timer.owner.idleTimeoutMs);
    clock.advance(50);
    timer.owner.lastActivity = set.now();
    clock.advance(70);
    timer.owner.lastActivity = set.now();
    clock.advance(99);
    assert.deepEqual(timer.owner.expiredAt, []);
    assert.deepEqual(timer.owner.wakeUps, [100, 150]);
    clock.advance(1);
    assert.deepEqual(timer.owner.expiredAt, [220]);
    clock.advance(1000);
    assert.deepEqual(timer.owner.expiredAt, [220], 'it fires once');
    assert.equal(timer.scheduled, false);
  });

  test('an owner with no activity fires at its first deadline with a single wake-up', () => {
    const { clock, set } = setup();
    const timer = idleTimer(set);
    set.scheduleIn(timer, timer.owner.idleTimeoutMs);
    clock.advance(500);
    assert.deepEqual(timer.owner.wakeUps, [100]);
    assert.deepEqual(timer.owner.expiredAt, [100]);
  });
});

describe('TimerSet against a reference model', () => {
  const TIMERS = 8;

  type Op =
    | { readonly kind: 'schedule'; readonly id: number; readonly delayMs: number }
    | { readonly kind: 'cancel'; readonly id: number }
    | { readonly kind: 'advance'; readonly ms: number }
    // stall: the event loop is blocked; time passes and nothing fires until the next advance.
    | { readonly kind: 'stall'; readonly ms: number };

  const id = fc.integer({ min: 0, max: TIMERS - 1 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant('schedule' as const),
      id,
      delayMs: fc.integer({ min: 0, max: 300 }),
    }),
    fc.record({ kind: fc.constant('cancel' as const), id }),
    fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 200 }) }),
    fc.record({ kind: fc.constant('stall' as const), ms: fc.integer({ min: 1, max: 200 }) }),
  );

  function checkInvariants(
    clock: FakeClock,
    set: TimerSet,
    timers: readonly Timer<number>[],
    model: ReadonlyMap<number, number>,
  ): void {
    assert.equal(set.size, model.size);
    const indices = new Set<number>();
    for (const timer of timers) {
      assert.equal(timer.index >= 0, model.has(timer.owner), `timer ${timer.owner} scheduled`);
      assert.equal(timer.scheduled, model.has(timer.owner));
      if (timer.index >= 0) {
        assert.ok(timer.index < set.size);
        assert.equal(timer.deadline, model.get(timer.owner));
        indices.add(timer.index);
      }
    }
    assert.equal(indices.size, model.size, 'heap slots are distinct');
    const earliest = Math.min(...model.values());
    assert.equal(set.nextDeadline, earliest);
    assert.equal(clock.overlaps, 0, 'never more than one native timer');
    // While the set is empty a native timer may still be armed (cancel leaves it); it
    // wakes once and is not re-armed, which the firing model below checks.
    if (model.size > 0) {
      assert.ok(clock.armed !== undefined, 'a native timer while not empty');
      assert.ok(clock.armed.due <= Math.ceil(earliest), 'the native timer is not late');
    }
  }

  test('fires the same timers in the same order as a sorted-list model, one native timer at a time', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const clock = new FakeClock();
        const set = new TimerSet(clock);
        const fired: { id: number; at: number; deadline: number }[] = [];
        const timers = Array.from(
          { length: TIMERS },
          (_, i) =>
            new Timer(i, (owner, self) => {
              fired.push({ id: owner, at: clock.now(), deadline: self.deadline });
            }),
        );
        // model: id -> deadline. A fraction per id keeps deadlines distinct, so the
        // expected order is total even though the heap is not stable.
        const model = new Map<number, number>();
        const expected: number[] = [];
        let stalled = false;
        for (const o of ops) {
          if (o.kind === 'schedule') {
            const deadline = clock.now() + o.delayMs + o.id / 16;
            const timer = timers[o.id];
            assert.ok(timer !== undefined);
            set.schedule(timer, deadline);
            model.set(o.id, deadline);
          } else if (o.kind === 'cancel') {
            const timer = timers[o.id];
            assert.ok(timer !== undefined);
            set.cancel(timer);
            model.delete(o.id);
          } else if (o.kind === 'stall') {
            clock.stall(o.ms);
            stalled = true;
          } else {
            const target = clock.now() + o.ms;
            const due = [...model.entries()]
              .filter(([, deadline]) => deadline <= target)
              .sort((x, y) => x[1] - y[1]);
            for (const [dueId] of due) {
              expected.push(dueId);
              model.delete(dueId);
            }
            clock.advance(o.ms);
          }
          checkInvariants(clock, set, timers, model);
        }
        assert.deepEqual(
          fired.map((f) => f.id),
          expected,
        );
        for (const f of fired) {
          assert.ok(f.at >= f.deadline, 'never fires before its deadline');
          // Without a blocked event loop the wake-up is the deadline rounded up to 1 ms.
          if (!stalled) assert.ok(f.at < f.deadline + 1, 'fires within 1 ms of its deadline');
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('TimerSet with the system clock', () => {
  test('a native timer left armed does not keep the process alive', async () => {
    // A child schedules a 60 s timer and cancels it: the native timer stays armed
    // (cancel leaves it) but is unref'd, so the child exits at once.
    const { execFile } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const module = fileURLToPath(new URL('../dist/timer-set.js', import.meta.url));
    const code = `
      const { Timer, TimerSet } = await import(${JSON.stringify(module)});
      const set = new TimerSet();
      const timer = new Timer(null, () => console.log('fired'));
      set.scheduleIn(timer, 60_000);
      set.cancel(timer);
      console.log('done');`;
    const started = Date.now();
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--input-type=module', '-e', code],
        { timeout: 30_000 },
        (err, out) => (err ? reject(err) : resolve(out)),
      );
    });
    assert.equal(stdout.trim(), 'done');
    assert.ok(Date.now() - started < 20_000, 'the child did not wait for the timer');
  });
});
