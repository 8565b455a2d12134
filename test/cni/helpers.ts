/**
 * Shared set-up of the CNI integration tests: a "host" network namespace
 * running the real node daemon (a separate process, PID recorded for the
 * cleanup script), container namespaces, and the real shim exec'd the way a
 * runtime does. Namespaces are "ct-cni…" so a failed run is cleaned up.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { testDir, recordPid, forgetPid, netnsName, run } from '../harness/resources.js';
import { createNamedNetns, deleteNamedNetns, namedNetnsPath } from '../../common/netkit/netns.js';
import { CniRuntime, execPlugin, type CniCall, type PluginRun } from '../../common/cni-runtime/index.js';
import { spawnDaemon, type DaemonProcess } from '../../plugins/cni-calico-like/src/daemon/spawn.js';
import { daemonRequest } from '../../plugins/cni-calico-like/src/daemon/client.js';
import { shimPath } from '../../plugins/cni-calico-like/src/install.js';
import type { DaemonConfigInput } from '../../plugins/cni-calico-like/src/daemon/config.js';
import type { Allocation } from '../../plugins/cni-calico-like/src/ipam/types.js';

export const SHIM = shimPath();

export interface TestHost {
  netns: string;
  dir: string;
  socket: string;
  daemon: DaemonProcess;
  conf(o?: Record<string, unknown>): Record<string, unknown>;
  cni(call: CniCall, conf?: unknown): Promise<PluginRun>;
  /** A CNI runtime running plugin chains inside the host namespace: corral's shim, then Debian's reference plugins. */
  runtime: CniRuntime;
  allocations(): Promise<Allocation[]>;
  /** Stops the daemon and starts it again; `whileDown` runs in between (calls that find no daemon). */
  restart(whileDown?: () => Promise<void>): Promise<void>;
  kill(): Promise<void>;
  container(tag: string): Promise<string>;
  dispose(): Promise<void>;
}

export async function startTestHost(tag: string, overrides: Partial<DaemonConfigInput> = {}): Promise<TestHost> {
  const netns = netnsName(`cni${tag}`);
  const dir = testDir(`cni-${tag}`);
  const socket = join(dir, 'cni.sock');
  const configFile = join(dir, 'daemon.json');
  const containers: string[] = [];
  await createNamedNetns(netns);
  writeFileSync(
    configFile,
    JSON.stringify({
      node: `test-${tag}`,
      socket,
      stateDir: join(dir, 'state'),
      store: { backend: 'embedded', path: join(dir, 'cluster.db'), sync: 'normal' },
      pools: [{ name: 'default', cidr: '100.96.0.0/16' }],
      reconcile: { intervalMs: 0, graceMs: 0, releaseEmptyBlocksAfterMs: 0, keepEmptyBlocks: 0 },
      log: { level: 'info', file: join(dir, 'daemon.log') },
      ...overrides,
    }),
  );
  const start = async (): Promise<DaemonProcess> => {
    const d = await spawnDaemon({ configFile, socket, logFile: join(dir, 'daemon.out'), netns });
    recordPid('cni-daemon', d.pid);
    return d;
  };
  const host: TestHost = {
    netns,
    dir,
    socket,
    daemon: await start(),
    conf: (o = {}) => ({ cniVersion: '1.1.0', name: 'testnet', type: 'corral', daemonSocket: socket, ...o }),
    cni: (call, conf) => execPlugin(SHIM, call, conf ?? host.conf()),
    runtime: new CniRuntime({ binDirs: [dirname(SHIM), '/usr/lib/cni'], cacheDir: join(dir, 'cni-cache'), hostNetns: netns }),
    allocations: async () => (await daemonRequest<{ allocations: Allocation[] }>(socket, 'GET', '/v1/ipam')).allocations,
    async restart(whileDown) {
      await host.daemon.stop();
      forgetPid('cni-daemon', host.daemon.pid);
      try {
        await whileDown?.();
      } finally {
        host.daemon = await start();
      }
    },
    async kill() {
      await host.daemon.stop('SIGKILL');
      forgetPid('cni-daemon', host.daemon.pid);
    },
    async container(t: string) {
      const name = netnsName(`cni${tag}${t}`);
      await createNamedNetns(name);
      containers.push(name);
      return namedNetnsPath(name);
    },
    async dispose() {
      await host.daemon.stop();
      forgetPid('cni-daemon', host.daemon.pid);
      for (const c of containers) await deleteNamedNetns(c);
      await deleteNamedNetns(netns);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return host;
}

/** `ip` inside a namespace, parsed as JSON. */
export async function ipJson<T = unknown>(netns: string, args: string[]): Promise<T> {
  return JSON.parse(await run('ip', ['-n', netns, '-j', ...args])) as T;
}

export function ping(fromNetns: string, to: string, count = 1): Promise<string> {
  return run('ip', ['netns', 'exec', fromNetns, 'ping', '-c', String(count), '-W', '1', '-i', '0.2', to]);
}

export const nsOf = (path: string): string => path.split('/').pop()!;
