/**
 * Per-process CPU time and memory, read from /proc (Linux only): utime+stime
 * from /proc/<pid>/stat, VmRSS (now) and VmHWM (peak) from /proc/<pid>/status.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcSample {
  /** User + system CPU time so far, seconds. */
  readonly cpuSeconds: number;
  /** Resident set size now, bytes. */
  readonly rssBytes: number;
  /** Peak resident set size so far, bytes. */
  readonly hwmBytes: number;
}

function clockTicks(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

const TICKS = clockTicks();

function kib(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  return match === null ? 0 : Number(match[1]) * 1024;
}

/** A sample of the process now, or null when it is gone (or /proc is not there). */
export function sampleProcess(pid: number | undefined): ProcSample | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    // What follows starts at field 3 (state); utime is field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { cpuSeconds: ticks / TICKS, rssBytes: kib(status, 'VmRSS'), hwmBytes: kib(status, 'VmHWM') };
  } catch {
    return null;
  }
}

/** CPU seconds the process spent between two samples (null when either is missing). */
export function cpuBetween(before: ProcSample | null, after: ProcSample | null): number | null {
  if (before === null || after === null) return null;
  return Math.max(0, after.cpuSeconds - before.cpuSeconds);
}

export interface ThreadSample {
  readonly tid: number;
  /** The thread's name (/proc/<pid>/task/<tid>/comm): MainThread, WorkerThread (a worker_threads Worker), V8Worker, libuv-worker, ... */
  readonly name: string;
  readonly cpuSeconds: number;
}

/** Every thread of the process now, with its CPU time so far; null when the process is gone. */
export function sampleThreads(pid: number | undefined): ThreadSample[] | null {
  if (pid === undefined) return null;
  try {
    const out: ThreadSample[] = [];
    for (const entry of readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${entry}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out.push({ tid: Number(entry), name, cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS });
      } catch {
        // the thread ended between the listing and the read
      }
    }
    return out;
  } catch {
    return null;
  }
}

/** CPU seconds by thread over a window. */
export interface ThreadCpu {
  readonly main: number;
  /** Each worker_threads Worker, by tid (start order). */
  readonly workers: readonly number[];
  /** Everything else together: V8's GC and compiler helpers, libuv's pool, the signal and inspector threads. */
  readonly other: number;
}

/** CPU seconds by thread between two samples; null when either is missing. */
export function threadCpuBetween(before: readonly ThreadSample[] | null, after: readonly ThreadSample[] | null): ThreadCpu | null {
  if (before === null || after === null) return null;
  const start = new Map(before.map((t) => [t.tid, t.cpuSeconds]));
  let main = 0;
  let other = 0;
  const workers: { tid: number; seconds: number }[] = [];
  for (const t of after) {
    const used = Math.max(0, t.cpuSeconds - (start.get(t.tid) ?? 0));
    if (t.name === 'MainThread') main += used;
    else if (t.name === 'WorkerThread') workers.push({ tid: t.tid, seconds: used });
    else other += used;
  }
  return { main, workers: workers.sort((a, b) => a.tid - b.tid).map((w) => w.seconds), other };
}

export interface MachineSample {
  /** Ticks every CPU spent busy (all but idle and iowait), and in all, since boot (/proc/stat). */
  readonly busyTicks: number;
  readonly totalTicks: number;
  readonly cpus: number;
}

/** The machine's CPU ticks now; null without /proc. */
export function sampleMachine(): MachineSample | null {
  try {
    const lines = readFileSync('/proc/stat', 'utf8').split('\n');
    const fields = lines[0]!.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
    const total = fields.reduce((a, b) => a + b, 0);
    return { busyTicks: total - fields[3]! - fields[4]!, totalTicks: total, cpus: lines.filter((l) => /^cpu\d/.test(l)).length };
  } catch {
    return null;
  }
}

/** How many CPUs were busy on average between two samples (0 to the CPU count), whatever process kept them busy. */
export function busyCoresBetween(before: MachineSample | null, after: MachineSample | null): number | null {
  if (before === null || after === null || after.totalTicks <= before.totalTicks) return null;
  return ((after.busyTicks - before.busyTicks) / (after.totalTicks - before.totalTicks)) * after.cpus;
}
