/**
 * Processes as /proc shows them, signalling them safely, and waiting for
 * them to end: the one implementation every daemon, command and harness uses.
 *
 * Two rules shape it. Zombies count as gone: killed daemons are reaped late on
 * this kind of host, and `kill -0` would call them alive. And a pid alone is
 * not an identity (pids are reused), so a process is "the same" only when its
 * start time (field 22 of /proc/PID/stat) or an environment marker matches what
 * was recorded when it was started.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** The fields after the command name in /proc/PID/stat (the name may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Process state letter (R, S, D, Z, …), undefined once reaped. */
export function procState(pid: number): string | undefined {
  const f = statFields(pid);
  return f?.[0] || undefined;
}

/** Start time in clock ticks since boot (field 22 of /proc/PID/stat): with the pid, the process's identity. */
export function procStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Alive = exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  const s = procState(pid);
  return s !== undefined && s !== 'Z' && s !== 'X';
}

/** Alive and, when `startTime` is given, the very process that started then (not a later one with its pid). */
export function isSameProcess(pid: number, startTime?: string): boolean {
  if (!processAlive(pid)) return false;
  return startTime === undefined || procStartTime(pid) === startTime;
}

/** The command line as its arguments; [] when the process is gone (or a kernel thread). */
export function processCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Whether the process's environment holds NAME=VALUE (children inherit it, so it marks a whole tree). */
export function hasEnvMarker(pid: number, name: string, value: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`${name}=${value}`);
  } catch {
    return false;
  }
}

/** Sends a signal; false when the process is already gone (or not ours to signal). */
export function signalProcess(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Signals `pid` only while it is still the process recorded with `startTime` (any live one when undefined). */
export function signalIfSame(pid: number, startTime: string | undefined, sig: NodeJS.Signals): boolean {
  return isSameProcess(pid, startTime) && signalProcess(pid, sig);
}

/** Poll `check` every `intervalMs` until true; false after `timeoutMs`. */
export async function pollUntil(check: () => boolean, timeoutMs: number, intervalMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(intervalMs);
  }
  return check();
}

/** Waits until none of `pids` is alive; false when some still are after `timeoutMs`. */
export function waitDead(pids: number[], timeoutMs: number): Promise<boolean> {
  return pollUntil(() => !pids.some(processAlive), timeoutMs, 20);
}

/** Wait for a process to end; TERM then KILL it if it outlives `graceMs`. */
export async function waitGone(pid: number, graceMs: number): Promise<void> {
  await pollUntil(() => !processAlive(pid), graceMs);
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    if (!processAlive(pid)) return;
    if (!signalProcess(pid, sig)) return;
    await pollUntil(() => !processAlive(pid), 3000);
  }
}

/**
 * Prefixes a command with `nsenter --net=/run/netns/NAME --` when a namespace
 * is given: only the network namespace changes (nsenter execs the command, so
 * the pid is the command's). Not `ip netns exec`, which also remounts /sys in
 * a new mount namespace and so hides /sys/fs/cgroup from an agent.
 */
export function inNamespace(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv] : argv;
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
