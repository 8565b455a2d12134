/**
 * Network isolator. `host`: the host's namespace. `isolated`: a namespace
 * of its own with loopback only. `cni`: such a namespace wired by the
 * NetworkHook (the CNI daemon) before the task starts, so the task's first
 * packet already has its address. The namespace is a file in the netns
 * directory (/run/netns by default, so `ip netns exec` works on it), made by
 * the task launcher and joined by the task with setns; health checks enter
 * it through the same file.
 */
import { invalid, isCorralError } from '../../../../../contracts/errors.js';
import type { NetworkHook } from '../../../../../contracts/containerizer.js';
import type { ContainerRecord } from '../checkpoint.js';
import type { TaskLauncher } from '../launcher.js';
import type { Isolator, IsolatorContext } from './types.js';

export class NetworkIsolator implements Isolator {
  readonly name = 'network';

  constructor(
    private readonly launcher: TaskLauncher,
    /** Path of a container's namespace file. */
    private readonly netnsPath: (containerId: string) => string,
    private readonly hook: NetworkHook | undefined,
  ) {}

  record(ctx: IsolatorContext): void {
    const net = ctx.config.network;
    if (net.mode === 'host') return;
    ctx.record.netns = this.netnsPath(ctx.config.containerId);
    if (net.mode === 'cni') ctx.record.cni = net;
  }

  async prepare(ctx: IsolatorContext): Promise<void> {
    const { config, record, plan } = ctx;
    const net = config.network;
    if (net.mode === 'host') return;
    if (net.mode === 'cni' && !this.hook) throw invalid(`network ${net.network} needs CNI, but this agent has no network hook`);
    await this.launcher.request('netns-create', [['path', record.netns!]]);
    plan.netns = record.netns!;
    if (net.mode === 'cni') {
      const { ipAddresses } = await this.hook!.attach(config.containerId, record.netns!, net);
      plan.ipAddresses = ipAddresses;
      record.ipAddresses = ipAddresses;
    }
  }

  async cleanup(record: ContainerRecord): Promise<void> {
    let failure: unknown;
    // DEL first, while the namespace still exists (it also works without it).
    if (record.cni && this.hook) {
      await this.hook.detach(record.containerId, record.netns, record.cni).catch((err: unknown) => {
        // A network the hook refuses outright (unknown name) never handed out an address.
        if (!(record.ipAddresses.length === 0 && isCorralError(err, 'INVALID_ARGUMENT'))) failure = err;
      });
    }
    if (record.netns) await this.launcher.request('netns-delete', [['path', record.netns]]);
    if (failure) throw failure;
  }
}
