/**
 * Readings from /proc: CPU time and memory of one process, how busy the machine is,
 * the descriptor limit, and what machine this is. Linux only, like the benchmark.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { type Settings, sleep } from './lib.js';
import { trackedPids } from './processes.js';

const CLK_TCK = 100; // USER_HZ is 100 on every Linux architecture Node supports

/** CpuTimes is a process's CPU time in seconds, in user space and in the kernel. */
export interface CpuTimes {
  user: number;
  system: number;
}

/** cpuTimes is utime and stime of one process from /proc/PID/stat, in seconds. */
export function cpuTimes(pid: number): CpuTimes {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are fields[11] and fields[12].
  return { user: Number(fields[11]) / CLK_TCK, system: Number(fields[12]) / CLK_TCK };
}

/** cpuSince is the CPU time `pid` used since `before` (a cpuTimes reading), or null without a pid. */
export function cpuSince(pid: number | null, before: CpuTimes | null): CpuTimes | null {
  if (pid === null || before === null) return null;
  const now = cpuTimes(pid);
  return { user: now.user - before.user, system: now.system - before.system };
}

/** rssKiB is VmRSS of one process from /proc/PID/status, in KiB. */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match?.[1] === undefined ? 0 : Number(match[1]);
}

/** busyPercent is how much of all CPUs was busy over `ms`, from /proc/stat. */
export async function busyPercent(ms: number): Promise<number> {
  const read = (): [number, number] => {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    return [ticks.reduce((a, b) => a + b, 0), idle];
  };
  const [total0, idle0] = read();
  await sleep(ms);
  const [total1, idle1] = read();
  const total = total1 - total0;
  return total > 0 ? (100 * (total - (idle1 - idle0))) / total : 0;
}

// user+nice ticks of all CPUs, from the first line of /proc/stat.
function systemUserTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  return (ticks[0] ?? 0) + (ticks[1] ?? 0);
}

// utime ticks of this process and of every child it tracks.
function ourUserTicks(): number {
  let ticks = 0;
  for (const pid of [process.pid, ...trackedPids()]) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      ticks += Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[11]);
    } catch {
      // exited: its time is no longer visible either way
    }
  }
  return ticks;
}

/**
 * quietly runs one measurement and, when other processes on the machine (not this
 * run's) used more than 10 % of the CPUs meanwhile, runs it again, up to
 * `settings.retries` more times, as the shared kit does. Foreign time is user time
 * from /proc/stat minus the user time of our own processes. A step that stays
 * disturbed gets a note.
 */
export async function quietly<T>(
  settings: Settings,
  label: string,
  notes: string[],
  measure: () => Promise<T>,
): Promise<T> {
  const cores = availableParallelism();
  for (let attempt = 0; ; attempt++) {
    const t0 = performance.now();
    const system0 = systemUserTicks();
    const ours0 = ourUserTicks();
    const result = await measure();
    const foreignTicks = systemUserTicks() - system0 - (ourUserTicks() - ours0);
    const capacityTicks = ((performance.now() - t0) / 1000) * CLK_TCK * cores;
    const foreignPercent =
      capacityTicks > 0 ? (100 * Math.max(0, foreignTicks)) / capacityTicks : 0;
    if (foreignPercent <= 10) return result;
    if (attempt >= settings.retries) {
      notes.push(
        `${label}: other processes used ${foreignPercent.toFixed(0)} % of the CPUs meanwhile (${attempt + 1} tries).`,
      );
      return result;
    }
    process.stderr.write(
      `[bench] ${label}: other processes used ${foreignPercent.toFixed(0)} % of the CPUs; measuring again\n`,
    );
    await sleep(1000);
  }
}

/** softFileLimit is `ulimit -n` of this process (inherited by its children), from /proc. */
export function softFileLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  if (match?.[1] === undefined) return 1024;
  return match[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(match[1]);
}

/** Machine describes where the run happened. */
export interface Machine {
  cpuModel: string;
  cores: number;
  node: string;
  kernel: string;
  date: string;
}

/** machine reads the CPU model from /proc/cpuinfo, the core count, Node and kernel versions. */
export function machine(): Machine {
  let cpuModel = 'unknown';
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match?.[1] !== undefined) cpuModel = match[1].trim();
  } catch {
    // not Linux: keep 'unknown'
  }
  return {
    cpuModel,
    cores: availableParallelism(),
    node: process.version,
    kernel: release(),
    date: new Date().toISOString(),
  };
}
