/**
 * Deadlines for a busy machine. A test waits for a condition, never for time; the
 * deadline only says how long to wait before calling it a failure. A deadline that
 * is ample on an idle laptop is not on a 2-core CI runner that is building, linting
 * and running two test files at once (27 concurrent Node start-ups took 7.4 s there),
 * so every deadline in the helpers goes through `deadline(ms)`, which multiplies by
 * one factor, TIME_SCALE:
 *
 * - `TEST_TIME_SCALE` in the environment, if set (a positive number);
 * - otherwise 5 when `CI=true` (`.ci/run` sets it), and 3 elsewhere.
 *
 * A larger factor costs nothing when the tests pass (waits end as soon as their
 * condition holds); it only makes a real failure take longer to report.
 */

/** timeScale reads the factor from `env` (see the module comment for the defaults). */
export function timeScale(env: NodeJS.ProcessEnv): number {
  const given = env['TEST_TIME_SCALE'];
  if (given !== undefined && given !== '') {
    const scale = Number(given);
    if (!Number.isFinite(scale) || scale <= 0)
      throw new Error(`TEST_TIME_SCALE: expected a positive number, got ${JSON.stringify(given)}`);
    return scale;
  }
  return env['CI'] === 'true' ? 5 : 3;
}

/** TIME_SCALE is this run's factor, read once from the environment. */
export const TIME_SCALE = timeScale(process.env);

/**
 * deadline scales a time limit in ms: how long a test may wait for something that
 * should take `ms` on an idle machine. Use it for waits and for upper bounds on an
 * elapsed time, never for lower bounds (a busy machine is only ever slower).
 */
export function deadline(ms: number): number {
  return Math.ceil(ms * TIME_SCALE);
}

/**
 * Limiter bounds how many of something run at once: `run` waits for a free slot
 * (first come, first served), runs the task and frees the slot when it settles.
 * A task must itself be bounded in time, or the tasks queued behind it wait forever.
 */
export class Limiter {
  readonly #limit: number;
  #running = 0;
  readonly #queue: (() => void)[] = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`limit ${limit}: expected >= 1`);
    this.#limit = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) {
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    } else {
      this.#running += 1;
    }
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter (the count stays), or give it back.
      const next = this.#queue.shift();
      if (next !== undefined) next();
      else this.#running -= 1;
    }
  }
}
