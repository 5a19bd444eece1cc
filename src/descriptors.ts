/**
 * How close the process is to its file descriptor limit.
 *
 * Running out of descriptors shows up in two places. When a connect attempt cannot
 * get a socket, the dial fails with EMFILE and we see it. But when accept() hits
 * EMFILE, libuv quietly uses a descriptor it keeps in reserve to accept and close
 * the waiting clients (the design's "back off"), and reports nothing to JavaScript
 * unless that trick fails. Which of the two happens first depends on timing (and
 * differs between Node 20 and 24). So the listener also asks here, on every accept,
 * whether one more connection would fit, and reports the shortage itself.
 *
 * The estimate is cheap: the soft limit is read once, the descriptors held before
 * the first connection are counted once, and each open connection counts as two
 * (client and upstream). Linux only (/proc); elsewhere it never reports a shortage.
 */
import { readdirSync, readFileSync } from 'node:fs';

// A connection needs two descriptors; libuv keeps one in reserve for its EMFILE trick.
const NEEDED_FOR_ONE_MORE = 3;

let softLimit: number | undefined;
let baseline = -1;
let held = 0;

function readSoftLimit(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    return line?.[1] === undefined || line[1] === 'unlimited'
      ? Number.POSITIVE_INFINITY
      : Number(line[1]);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function countOpen(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

/** holdDescriptors records that `n` descriptors were taken (n > 0) or given back (n < 0). */
export function holdDescriptors(n: number): void {
  held += n;
}

/** descriptorsExhausted tells whether one more connection would exceed the descriptor limit. */
export function descriptorsExhausted(): boolean {
  softLimit ??= readSoftLimit();
  if (softLimit === Number.POSITIVE_INFINITY) return false;
  if (baseline < 0) baseline = Math.max(0, countOpen() - held);
  return softLimit - (baseline + held) < NEEDED_FOR_ONE_MORE;
}
