/**
 * Before `corral up` starts anything: root, the host tools the real stack
 * runs, corral's native helpers, cgroups, and free ports. Each problem is
 * named with its fix; `./corral up` installs the Debian packages itself
 * (UP_PACKAGES in scripts/setup.sh) and builds the helpers.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CorralError } from '../../contracts/errors.js';
import { defaultShimPath } from '../../plugins/isolator/src/index.js';
import { NATIVE_BUILD_DIR } from '../../common/sys/paths.js';
import { shimPath } from '../../plugins/cni-calico-like/src/index.js';
import type { UpPlan } from './plan.js';

/** Command → the Debian package that provides it (the same list as UP_PACKAGES in scripts/setup.sh). */
const UP_TOOLS: Record<string, string> = {
  ip: 'iproute2',
  nsenter: 'util-linux',
  losetup: 'mount',
  umount: 'mount',
  'mkfs.ext4': 'e2fsprogs',
  busybox: 'busybox-static',
  dig: 'dnsutils',
  curl: 'curl',
};

function which(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const f = join(d, cmd);
    try {
      accessSync(f, constants.X_OK);
      return f;
    } catch {
      // not here
    }
  }
  return undefined;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function preflight(plan: UpPlan): Promise<void> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('corral up needs root (cgroups, namespaces, mounts): run it as root, or use --simulate');
  const missing = Object.entries(UP_TOOLS).filter(([cmd]) => !which(cmd));
  if (missing.length) {
    problems.push(
      `missing programs: ${missing.map(([c, p]) => `${c} (Debian package ${p})`).join(', ')}; ./corral up installs them, or: apt-get install ${[...new Set(missing.map(([, p]) => p))].join(' ')}`,
    );
  }
  for (const [what, file, dir] of [
    ['task launcher', defaultShimPath(), 'native/task-shim'],
    ['CNI plugin', shimPath(), 'native/cni-shim'],
    ['setns addon', join(NATIVE_BUILD_DIR(), 'corral_netns.node'), 'native/cni-shim'],
  ] as const) {
    if (!existsSync(file)) problems.push(`the ${what} ${file} is missing: ./corral builds it (needs build-essential), or make -C ${dir}`);
  }
  if (!existsSync('/sys/fs/cgroup/cgroup.controllers') && !existsSync('/sys/fs/cgroup/memory')) problems.push('no cgroup filesystem at /sys/fs/cgroup (v1 memory hierarchy or v2)');
  const ports: Array<[string, number]> = [
    ['--port (master)', plan.ports.master],
    ['--agent-port', plan.ports.agent],
    ['--services-port', plan.ports.services],
    ['--dns-port', plan.ports.dns],
    ['--discovery-port', plan.ports.discovery],
  ];
  const seen = new Map<number, string>();
  for (const [flag, port] of ports) {
    if (seen.has(port)) problems.push(`${flag} and ${seen.get(port)} are both ${port}`);
    seen.set(port, flag);
    if (!(await portFree(port))) problems.push(`port ${port} (${flag}) is in use on 127.0.0.1: stop what uses it or choose another port`);
  }
  if (problems.length) throw new CorralError('FAILED_PRECONDITION', `corral up cannot start:\n  - ${problems.join('\n  - ')}`);
}
