/**
 * Process identity from /proc: a pid alone can be reused, so a process is
 * "the same" only when its start time (field 22 of /proc/PID/stat) matches
 * what was recorded. Zombies count as gone — this host's init reaps late.
 */
import { readFileSync } from 'node:fs';

interface ProcStat {
  state: string;
  startTime: string;
}

export function procStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); start time is field 22.
    return { state: fields[0]!, startTime: fields[19]! };
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs and (if given) started at `startTime`. */
export function isRunning(pid: number, startTime?: string): boolean {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

export function signalIfRunning(pid: number, startTime: string | undefined, signal: NodeJS.Signals): boolean {
  if (!isRunning(pid, startTime)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
