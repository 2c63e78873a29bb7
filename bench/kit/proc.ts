/**
 * A process's CPU time and memory from /proc (Linux only): utime + stime from
 * /proc/<pid>/stat, VmRSS (now) and VmHWM (peak) from /proc/<pid>/status; the
 * same per thread (/proc/<pid>/task), and CPU to the nanosecond from the
 * threads' schedstat.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** User + system CPU so far, s; resident set size now and at its peak so far, bytes. */
export type ProcSample = { readonly [K in 'cpuSeconds' | 'rssBytes' | 'hwmBytes']: number };

const TICKS = ((): number => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds in a stat line: the command name (field 2) may hold spaces and parentheses; after the last ')' come fields 3.., utime 14 and stime 15. */
function statCpu(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

const kib = (status: string, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? 0) * 1024;

/** A sample of the process now; null when it is gone (or there is no /proc). */
export function sampleProcess(pid: number | undefined): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { cpuSeconds: statCpu(readFileSync(`/proc/${pid}/stat`, 'utf8')), rssBytes: kib(status, 'VmRSS'), hwmBytes: kib(status, 'VmHWM') };
  } catch {
    return null;
  }
}

/** CPU seconds between two samples; null when either is missing. */
export function cpuBetween(before: ProcSample | null, after: ProcSample | null): number | null {
  return before === null || after === null ? null : Math.max(0, after.cpuSeconds - before.cpuSeconds);
}

export interface ThreadSample {
  readonly tid: number;
  /** /proc/<pid>/task/<tid>/comm: MainThread, WorkerThread (a worker_threads Worker), V8Worker, libuv-worker, ... */
  readonly name: string;
  readonly cpuSeconds: number;
}

/** Every thread of the process now, with its CPU so far; null when the process is gone. */
export function sampleThreads(pid: number | undefined): ThreadSample[] | null {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        return [{ tid: Number(tid), name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), cpuSeconds: statCpu(stat) }];
      } catch {
        return []; // the thread ended between the listing and the read
      }
    });
  } catch {
    return null;
  }
}

/**
 * CPU time of all the process's threads so far, ns, from /proc/<pid>/task/<tid>/schedstat
 * (time on a CPU, to the nanosecond: an idle process's few milliseconds a second are far
 * below the 10 ms ticks of /proc/<pid>/stat); null when the process is gone.
 */
export function cpuNanoseconds(pid: number | undefined): number | null {
  try {
    return readdirSync(`/proc/${pid}/task`).reduce((sum, tid) => {
      try {
        return sum + Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        return sum; // the thread ended between the listing and the read
      }
    }, 0);
  } catch {
    return null;
  }
}

/** CPU seconds by thread over a window: the main thread, each Worker (by tid), the rest (GC and compiler helpers, libuv's pool). */
export interface ThreadCpu {
  readonly main: number;
  readonly workers: readonly number[];
  readonly other: number;
}

export function threadCpuBetween(before: readonly ThreadSample[] | null, after: readonly ThreadSample[] | null): ThreadCpu | null {
  if (before === null || after === null) return null;
  const start = new Map(before.map((t) => [t.tid, t.cpuSeconds]));
  const used = (t: ThreadSample): number => Math.max(0, t.cpuSeconds - (start.get(t.tid) ?? 0));
  const of = (name: string): ThreadSample[] => after.filter((t) => t.name === name).sort((a, b) => a.tid - b.tid);
  const total = (threads: ThreadSample[]): number => threads.reduce((n, t) => n + used(t), 0);
  return { main: total(of('MainThread')), workers: of('WorkerThread').map(used), other: total(after.filter((t) => t.name !== 'MainThread' && t.name !== 'WorkerThread')) };
}
