/**
 * Conventions every integration test follows so that scripts/cleanup-tests.sh
 * (test/harness/sweep.ts)
 * can undo whatever a failed test left behind:
 *  - temp dirs (and so mounts and loop-device backing files) under TEST_ROOT;
 *  - started daemons record their PID under TEST_ROOT/pids;
 *  - network namespaces are named "ct-…".
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { procStartTime } from '../../common/sys/process.js';

export const TEST_ROOT = process.env.CORRAL_TEST_ROOT ?? '/tmp/corral-test';

export function testDir(prefix: string): string {
  mkdirSync(TEST_ROOT, { recursive: true });
  return mkdtempSync(join(TEST_ROOT, `${prefix}-`));
}

/** Records a started process (pid and start time: the sweeper never signals a stranger that reused the pid). */
export function recordPid(name: string, pid: number): void {
  mkdirSync(join(TEST_ROOT, 'pids'), { recursive: true });
  writeFileSync(join(TEST_ROOT, 'pids', `${name}-${pid}.pid`), `${pid} ${procStartTime(pid) ?? ''}`);
}

export function forgetPid(name: string, pid: number): void {
  rmSync(join(TEST_ROOT, 'pids', `${name}-${pid}.pid`), { force: true });
}

/** Namespace names the cleanup script recognises; keep `tag` short (interface names derive from it). */
export const netnsName = (tag: string): string => `ct-${tag}`;

/** Run a program (never a shell string); resolves with stdout, rejects with stderr in the message. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
    // A program that reads no input may exit before taking it: the EPIPE that follows is not a failure.
    child.stdin?.on('error', () => {});
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
