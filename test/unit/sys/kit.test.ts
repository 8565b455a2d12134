/**
 * The host kit's process, exec and wait helpers against real short-lived
 * processes this test starts (and ends) itself.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isCorralError } from '../../../contracts/errors.js';
import { hasEnvMarker, isSameProcess, pollUntil, procStartTime, procState, processAlive, processCmdline, signalIfSame, signalProcess, waitDead } from '../../../common/sys/process.js';
import { exec, run } from '../../../common/sys/exec.js';
import { childExited, waitUntil } from '../../../common/sys/wait.js';

const children: ChildProcess[] = [];
function start(env: Record<string, string> = {}): ChildProcess & { pid: number } {
  const c = spawn('sleep', ['30'], { stdio: 'ignore', env: { ...process.env, ...env } });
  children.push(c);
  return c as ChildProcess & { pid: number };
}
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await childExited(c, 5000);
    }
  }
});

describe('processes from /proc', () => {
  it('reads state, start time, command line and environment markers of a live process', async () => {
    const c = start({ CORRAL_KIT_TEST: 'm1' });
    await pollUntil(() => processCmdline(c.pid)[0] === 'sleep', 5000);
    expect(processAlive(c.pid)).toBe(true);
    expect(procState(c.pid)).toMatch(/^[RSD]$/);
    expect(processCmdline(c.pid)).toEqual(['sleep', '30']);
    expect(hasEnvMarker(c.pid, 'CORRAL_KIT_TEST', 'm1')).toBe(true);
    expect(hasEnvMarker(c.pid, 'CORRAL_KIT_TEST', 'm2')).toBe(false);
    const started = procStartTime(c.pid)!;
    expect(started).toMatch(/^\d+$/);
    expect(isSameProcess(c.pid, started)).toBe(true);
    expect(isSameProcess(c.pid, String(Number(started) + 1))).toBe(false);
  });

  it('signals only the recorded process: a different start time is a different process', async () => {
    const c = start();
    const started = procStartTime(c.pid)!;
    expect(signalIfSame(c.pid, String(Number(started) + 1), 'SIGKILL')).toBe(false);
    expect(processAlive(c.pid)).toBe(true);
    expect(signalIfSame(c.pid, started, 'SIGKILL')).toBe(true);
    expect(await waitDead([c.pid], 10_000)).toBe(true);
  });

  it('a zombie counts as gone', async () => {
    // The exec'd sleep inherits the finished `true` as a child it never reaps: a zombie for as long as it runs.
    const c = spawn('sh', ['-c', 'true & exec sleep 30'], { stdio: 'ignore' });
    children.push(c);
    let zombie = 0;
    const found = await pollUntil(() => {
      try {
        zombie = Number(readFileSync(`/proc/${c.pid}/task/${c.pid}/children`, 'utf8').trim().split(' ')[0]);
      } catch {
        return false;
      }
      return zombie > 0 && procState(zombie) === 'Z';
    }, 10_000);
    expect(found).toBe(true);
    expect(processAlive(zombie)).toBe(false);
    expect(isSameProcess(zombie)).toBe(false);
    expect(signalIfSame(zombie, undefined, 'SIGTERM')).toBe(false);
  });

  it('a reaped pid has no state, no command line and cannot be signalled', async () => {
    const c = start();
    const pid = c.pid;
    c.kill('SIGKILL');
    await childExited(c, 10_000);
    expect(await pollUntil(() => procState(pid) === undefined, 10_000)).toBe(true);
    expect(processAlive(pid)).toBe(false);
    expect(processCmdline(pid)).toEqual([]);
    expect(signalProcess(pid, 'SIGTERM')).toBe(false);
  });

  it('waitDead reports false while a process outlives the deadline', async () => {
    const c = start();
    expect(await waitDead([c.pid], 100)).toBe(false);
  });
});

describe('exec and run', () => {
  it('run passes stdin and the environment and reports the exit without throwing', async () => {
    const r = await run('/bin/sh', ['-c', 'cat; echo "$KIT_X" >&2; exit 3'], { input: 'hello', env: { PATH: '/usr/bin:/bin', KIT_X: 'x1' } });
    expect(r).toMatchObject({ code: 3, stdout: 'hello', stderr: 'x1\n', timedOut: false });
    const missing = await run('/nonexistent/program', []);
    expect(missing.code).not.toBe(0);
    expect(missing.error).toMatch(/ENOENT/);
  });

  it('exec resolves with stdout, and rejects with the command and its last stderr lines, or TIMEOUT', async () => {
    expect(await exec('/bin/echo', ['a', 'b'])).toBe('a b\n');
    const failed = await exec('/bin/sh', ['-c', 'echo one >&2; echo two >&2; exit 1']).catch((e: unknown) => e);
    expect(isCorralError(failed, 'INTERNAL')).toBe(true);
    expect((failed as Error).message).toBe('/bin/sh -c echo one >&2; echo two >&2; exit 1 failed: one; two');
    const slow = await exec('sleep', ['5'], { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isCorralError(slow, 'TIMEOUT')).toBe(true);
    expect((slow as Error).message).toBe('sleep 5 did not finish within 100 ms');
  });
});

describe('waitUntil', () => {
  it('resolves once the check holds; a throwing check counts as not yet', async () => {
    let n = 0;
    await waitUntil(
      () => {
        n++;
        if (n < 3) throw new Error('not serving yet');
        return n >= 4;
      },
      { what: 'the fourth try', timeoutMs: 10_000, intervalMs: 1 },
    );
    expect(n).toBe(4);
  });

  it('times out with a TIMEOUT naming what was awaited and the detail; failIf ends the wait early', async () => {
    const err = await waitUntil(() => false, { what: 'the daemon to answer', timeoutMs: 50, intervalMs: 10, detail: () => 'last log line' }).catch((e: unknown) => e);
    expect(isCorralError(err, 'TIMEOUT')).toBe(true);
    expect((err as Error).message).toBe('timed out after 50 ms waiting for the daemon to answer: last log line');
    let checks = 0;
    const gone = await waitUntil(() => (checks++, false), { what: 'x', timeoutMs: 10_000, failIf: () => 'the daemon exited' }).catch((e: unknown) => e);
    expect(isCorralError(gone, 'UNAVAILABLE')).toBe(true);
    expect((gone as Error).message).toBe('the daemon exited');
    expect(checks).toBe(0);
  });

  it('childExited resolves true on exit and false at the deadline', async () => {
    const c = start();
    expect(await childExited(c, 50)).toBe(false);
    c.kill('SIGTERM');
    expect(await childExited(c, 10_000)).toBe(true);
    expect(await childExited(c, 10)).toBe(true);
  });
});
