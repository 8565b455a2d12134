/** Processes as /proc shows them, and waiting for them to end. */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Alive = exists and is not a zombie (killed processes are reaped late here, and kill -0 sees zombies). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function processCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Wait for a process to end; TERM then KILL it if it outlives `graceMs`. */
export async function waitGone(pid: number, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (processAlive(pid) && Date.now() < deadline) await sleep(10);
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    if (!processAlive(pid)) return;
    try {
      process.kill(pid, sig);
    } catch {
      return;
    }
    const until = Date.now() + 3000;
    while (processAlive(pid) && Date.now() < until) await sleep(10);
  }
}

/** Poll `check` every 10 ms until true; false after `timeoutMs`. */
export async function pollUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(10);
  }
  return check();
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
