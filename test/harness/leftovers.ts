/**
 * What the suite left on the host: recorded daemons still alive, mounts and
 * loop devices under the test root, `ct-` network namespaces, and test
 * cgroups (corral-test-*, ct-*). The global teardown fails the run when any
 * remain, so a test that leaks is caught where it runs; test.sh's cleanup
 * still removes them afterwards.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { TEST_ROOT } from './resources.js';
import { processAlive } from '../../common/sys/process.js';

export function findLeftovers(root = TEST_ROOT): string[] {
  const out: string[] = [];
  const pids = join(root, 'pids');
  if (existsSync(pids)) {
    for (const f of readdirSync(pids)) {
      const pid = Number(readFileSync(join(pids, f), 'utf8').trim());
      if (Number.isInteger(pid) && pid > 1 && processAlive(pid)) out.push(`process ${f.replace(/\.pid$/, '')}`);
    }
  }
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const target = line.split(' ')[1];
    if (target && (target === root || target.startsWith(`${root}/`))) out.push(`mount ${target}`);
  }
  try {
    for (const line of execFileSync('losetup', ['-a'], { encoding: 'utf8' }).split('\n')) if (line.includes(root)) out.push(`loop device ${line.split(':')[0]}`);
  } catch {
    // no losetup: nothing to report
  }
  if (existsSync('/run/netns')) for (const ns of readdirSync('/run/netns')) if (ns.startsWith('ct-')) out.push(`network namespace ${ns}`);
  for (const h of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
    const dirs = [join('/sys/fs/cgroup', h)];
    for (const d of dirs) {
      if (!existsSync(d)) continue;
      let entries: string[] = [];
      try {
        entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
      } catch {
        continue;
      }
      for (const e of entries) {
        if (!e.startsWith('corral-test-') && !e.startsWith('ct-')) continue;
        const sub = readdirSync(join(d, e), { withFileTypes: true }).filter((x) => x.isDirectory());
        if (sub.length) out.push(`cgroup ${join(d, e)} (${sub.length} children)`);
      }
    }
  }
  return out;
}
