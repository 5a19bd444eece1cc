/**
 * The timer set: every deadline of the proxy (connect, idle, half-close, shutdown)
 * in one binary min-heap ordered by absolute expiry, driven by ONE native timer
 * armed for the earliest deadline. This is the design's timerfd: however many
 * connections are open, the event loop holds a single timer for them.
 *
 * Why a heap of our own rather than a `setTimeout` per connection: one native timer
 * means one wake-up for the earliest deadline, and the set can be inspected and
 * unit-tested with an injected clock.
 *
 * Refreshing is lazy. An idle deadline is not moved on every chunk (that would be a
 * heap operation per read); the owner records its last activity and, when the timer
 * fires, checks whether it really expired and re-schedules itself if not. So the
 * per-chunk cost of an idle timeout is one clock read.
 *
 * Invariant: `timer.index` is the timer's slot in `#heap`, -1 when not scheduled, or
 * DUE while it waits in an expiry round for its callback; every swap updates it, so
 * cancel() is O(log n) (as Node's priority_queue setPosition).
 */

/** Clock abstracts time so tests can drive the set by hand. Times are milliseconds. */
export interface Clock {
  now(): number;
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

// A timer taken out of the heap because it is due, whose callback has not run yet.
// cancel() or clear() turns it back to -1, so a callback can still stop it.
const DUE = -2;

// setTimeout cannot wait longer than 2^31-1 ms; a later deadline is reached in hops.
const MAX_NATIVE_DELAY_MS = 2 ** 31 - 1;

/**
 * systemClock reads `performance.now()` and uses Node's timers. The native timer is
 * unref'd: it never keeps the process alive by itself (the sockets whose deadlines it
 * serves do), so the set may leave it armed when it has nothing left to wait for.
 */
const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Timer is one deadline owned by someone else (a proxy context, a listener). It is
 * created once by its owner and scheduled, re-scheduled and cancelled as often as
 * needed; `onExpire(owner)` is a plain function, so no closure is made per schedule.
 */
export class Timer<Owner = unknown> {
  /** deadline in clock milliseconds; meaningful only while scheduled. */
  deadline = 0;
  /** index in the heap, -1 when not scheduled, DUE (-2) while about to fire. Owned by TimerSet. */
  index = -1;
  readonly owner: Owner;
  readonly onExpire: (owner: Owner, timer: Timer<Owner>) => void;

  constructor(owner: Owner, onExpire: (owner: Owner, timer: Timer<Owner>) => void) {
    this.owner = owner;
    this.onExpire = onExpire;
  }

  get scheduled(): boolean {
    return this.index >= 0;
  }
}

/** TimerSet keeps timers ordered by deadline and fires each once it is due. */
export class TimerSet {
  readonly clock: Clock;
  // biome-ignore lint/suspicious/noExplicitAny: timers of every owner type live in one heap
  readonly #heap: Timer<any>[] = [];
  #due: Timer[] = [];
  #native: unknown = null;
  #nativeDeadline = Number.POSITIVE_INFINITY;
  readonly #onNative = (): void => this.#expire();

  constructor(clock: Clock = systemClock) {
    this.clock = clock;
  }

  /** now is the clock's current time in milliseconds. */
  now(): number {
    return this.clock.now();
  }

  /** size is the number of scheduled timers. */
  get size(): number {
    return this.#heap.length;
  }

  /** nextDeadline is the earliest deadline, or Infinity when nothing is scheduled. */
  get nextDeadline(): number {
    return this.#heap[0]?.deadline ?? Number.POSITIVE_INFINITY;
  }

  /** schedule (re)places `timer` to fire at absolute time `deadline`. */
  schedule<O>(timer: Timer<O>, deadline: number): void {
    if (timer.index >= 0) {
      const earlier = deadline < timer.deadline;
      timer.deadline = deadline;
      if (earlier) this.#siftUp(timer.index);
      else this.#siftDown(timer.index);
    } else {
      timer.deadline = deadline;
      timer.index = this.#heap.length;
      this.#heap.push(timer);
      this.#siftUp(timer.index);
    }
    this.#arm();
  }

  /** scheduleIn is schedule(timer, now() + delayMs). */
  scheduleIn<O>(timer: Timer<O>, delayMs: number): void {
    this.schedule(timer, this.clock.now() + delayMs);
  }

  /** cancel removes `timer` if it is scheduled; cancelling twice is harmless. */
  cancel<O>(timer: Timer<O>): void {
    const index = timer.index;
    if (index === DUE) timer.index = -1; // due in this round: it will not fire
    if (index < 0) return;
    this.#removeAt(index);
    // The native timer is left armed, even when the set is now empty: when it fires
    // early it re-arms for the earliest deadline, or for nothing. Clearing it here would
    // cost a clearTimeout and a setTimeout per connection whose only timer is a
    // connect timeout that is cancelled a moment later.
  }

  #removeAt(index: number): void {
    const timer = this.#heap[index];
    if (timer === undefined) return;
    const last = this.#heap.pop();
    timer.index = -1;
    if (last !== undefined && last !== timer) {
      this.#heap[index] = last;
      last.index = index;
      this.#siftUp(index);
      this.#siftDown(last.index);
    }
  }

  /** clear cancels every timer and the native one. */
  clear(): void {
    for (const timer of this.#heap) timer.index = -1;
    for (const timer of this.#due) timer.index = -1;
    this.#heap.length = 0;
    this.#disarm();
  }

  #expire(): void {
    this.#native = null;
    this.#nativeDeadline = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    // Pop every timer that is due before calling any of them, so a callback that
    // schedules itself again (even for "now") waits for the next round: no endless loop.
    const due: Timer[] = [];
    for (let top = this.#heap[0]; top !== undefined && top.deadline <= now; top = this.#heap[0]) {
      this.#removeAt(0);
      top.index = DUE;
      due.push(top);
    }
    this.#due = due;
    for (const timer of due) {
      // A callback may cancel or reschedule a timer later in `due`: then it is no longer DUE.
      if (timer.index !== DUE) continue;
      timer.index = -1;
      timer.onExpire(timer.owner, timer);
    }
    this.#due = [];
    this.#arm();
  }

  #arm(): void {
    const first = this.#heap[0];
    if (first === undefined || first.deadline >= this.#nativeDeadline) return;
    this.#disarm();
    const delay = Math.min(Math.max(0, first.deadline - this.clock.now()), MAX_NATIVE_DELAY_MS);
    this.#nativeDeadline = first.deadline;
    // Node may fire a timer up to 1 ms early relative to performance.now(); #expire
    // then finds nothing due and re-arms, which costs one extra wake-up.
    this.#native = this.clock.setTimer(this.#onNative, Math.ceil(delay));
  }

  #disarm(): void {
    if (this.#native !== null) this.clock.clearTimer(this.#native);
    this.#native = null;
    this.#nativeDeadline = Number.POSITIVE_INFINITY;
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    const timer = heap[index];
    if (timer === undefined) return;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex];
      if (parent === undefined || parent.deadline <= timer.deadline) break;
      heap[index] = parent;
      parent.index = index;
      index = parentIndex;
    }
    heap[index] = timer;
    timer.index = index;
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    const timer = heap[index];
    if (timer === undefined) return;
    const length = heap.length;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= length) break;
      const left = heap[child];
      const right = heap[child + 1];
      if (left === undefined) break;
      let smallest = left;
      if (right !== undefined && right.deadline < left.deadline) {
        child += 1;
        smallest = right;
      }
      if (smallest.deadline >= timer.deadline) break;
      heap[index] = smallest;
      smallest.index = index;
      index = child;
    }
    heap[index] = timer;
    timer.index = index;
  }
}
