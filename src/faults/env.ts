/**
 * What toxic stages take from outside: time (a TimerSet, whose clock a test may
 * drive by hand) and chance (a random source a test may seed). Nothing else: a stage
 * sees its connection only through its StageOutput.
 */
import { TimerSet } from '../timer-set.js';

/** Random returns a number in [0, 1), as Math.random does. */
export type Random = () => number;

/** ToxicEnv is the time and chance every toxic stage of a registry uses. */
export interface ToxicEnv {
  /** timers holds every stage timer (one native timer for all of them). */
  readonly timers: TimerSet;
  /** random draws toxicity, jitter and slice sizes. */
  readonly random: Random;
}

let sharedTimers: TimerSet | null = null;

/**
 * defaultToxicEnv: one TimerSet for the process (made on first use, its native timer
 * unref'd: the sockets, not their toxics, keep the process alive) and Math.random.
 */
export function defaultToxicEnv(): ToxicEnv {
  sharedTimers ??= new TimerSet();
  return { timers: sharedTimers, random: Math.random };
}

/**
 * seededRandom is a small deterministic generator (mulberry32): the same seed gives
 * the same sequence, for tests that must know which connections get a toxic.
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
