/** The mount table, and unmounting FUSE filesystems whose daemon may be wedged. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CorralError } from '../../contracts/errors.js';

/** Mount table entries (unescaped). */
export function mounts(): { source: string; target: string; fstype: string }[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [source = '', target = '', fstype = ''] = line.split(' ');
      const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      return { source: unescape(source), target: unescape(target), fstype };
    });
}

export const isMountpoint = (path: string): boolean => mounts().some((m) => m.target === path);

/**
 * Unmount a FUSE filesystem whose daemon may be wedged (a fenced rbd-fuse
 * never answers the unmount): wait up to `deadlineMs`, then run `onStuck`
 * (which kills the daemon; that aborts the connection and frees the umount).
 */
export async function umountFuse(target: string, deadlineMs: number, onStuck: () => Promise<void>): Promise<void> {
  if (!isMountpoint(target)) return;
  const child = spawn('umount', [target], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(-1));
    child.on('exit', (code) => resolve(code));
  });
  const first = await Promise.race([exited, sleep(deadlineMs).then(() => 'stuck' as const)]);
  if (first === 'stuck') await onStuck();
  const code = first === 'stuck' ? await exited : first;
  if (code !== 0 && isMountpoint(target)) throw new CorralError('INTERNAL', `umount ${target} failed: ${stderr.trim()}`);
}
