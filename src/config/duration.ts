/**
 * Durations as users write them: a whole number with an optional unit, `ms`, `s`, `m`
 * or `h` (`1500ms`, `30s`, `5m`); a bare number is milliseconds. They are parsed once,
 * at the edge, and held in milliseconds everywhere inside.
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+)(ms|s|m|h)?$/;

/** DurationError explains why a string is not a duration; the caller adds where it came from. */
export class DurationError extends Error {}

/** parseDuration turns `30s` into 30000. It throws DurationError for anything else. */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text);
  if (match === null) {
    throw new DurationError(
      `expected a whole number with an optional unit ms, s, m or h (like 30s), got ${JSON.stringify(text)}`,
    );
  }
  const [, digits = '', unit = 'ms'] = match;
  const ms = Number(digits) * (UNIT_MS[unit] ?? 1);
  if (!Number.isSafeInteger(ms)) {
    throw new DurationError(`duration ${JSON.stringify(text)} is too large`);
  }
  return ms;
}

/** formatDuration writes milliseconds back in the largest unit that divides them: 30000 → `30s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['h', 'm', 's'] as const) {
    const size = UNIT_MS[unit] ?? 1;
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
