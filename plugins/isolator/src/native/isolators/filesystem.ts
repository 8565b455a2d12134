/**
 * Filesystem isolator: the sandbox (working directory, log files, the
 * termination file under `.corral/`), the task's user, and an optional root
 * filesystem from an image tarball — an overlay of the shared extracted
 * image under a per-container upper directory, mounted and pivoted into by
 * the shim inside the task's mount namespace (so no host mount exists to
 * leak). The sandbox appears inside the image at `sandboxTarget`.
 *
 * The user: the launch's, else the containerizer's default (nobody); a name
 * is looked up in the passwd file of the filesystem the task will see (an
 * image's, then the host's), and an unknown one fails the launch. uid 0 only when the launch does not deny it.
 * The sandbox is chowned to the user, as Mesos does, so the task can write
 * there and nowhere else it was not given. Its capability sets follow the
 * uid (common/capabilities.ts).
 */
import { chownSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { invalid } from '../../../../../contracts/errors.js';
import { logPath } from '../../task-config.js';
import { resolveUser } from '../../common/user.js';
import { capabilityMask, taskCapabilities } from '../../common/capabilities.js';
import type { ContainerRecord } from '../checkpoint.js';
import type { ImageCache } from '../images.js';
import type { Isolator, IsolatorContext } from './types.js';

export class FilesystemIsolator implements Isolator {
  readonly name = 'filesystem';

  constructor(
    private readonly images: ImageCache,
    private readonly rootfsDir: string,
    private readonly hasMountNamespace: boolean,
    private readonly defaultUser: string,
  ) {}

  record(ctx: IsolatorContext): void {
    if (ctx.config.image?.kind === 'tarball') ctx.record.rootfsState = join(this.rootfsDir, ctx.config.containerId);
  }

  async prepare(ctx: IsolatorContext): Promise<void> {
    const { config, plan, record } = ctx;
    rmSync(record.terminationFile, { force: true }); // the supervisor makes its directory
    for (const f of [config.logs.stdout, config.logs.stderr]) {
      const dir = dirname(logPath(config.sandbox, f));
      if (dir !== config.sandbox) mkdirSync(dir, { recursive: true });
    }
    let userRoot = '/';
    if (config.image?.kind === 'tarball') {
      if (!this.hasMountNamespace) throw invalid('a root filesystem image needs the mount namespace, which this agent does not use');
      plan.rootfs = await this.images.rootfs(config.image.path);
      plan.rootfsState = record.rootfsState!;
      plan.cwd = plan.sandboxTarget;
      userRoot = plan.rootfs;
    }
    plan.env.MESOS_SANDBOX = plan.cwd;
    plan.env.CORRAL_SANDBOX = plan.cwd;
    const userSpec = config.command?.user ?? this.defaultUser;
    // In an image, its own passwd file first; then the host's, whose uids the kernel knows all the same.
    let user;
    try {
      user = resolveUser(userSpec, userRoot);
    } catch (err) {
      if (userRoot === '/') throw err;
      user = resolveUser(userSpec, '/');
    }
    if (user.uid === 0 && config.security?.denyRoot) throw invalid(`the task would run as root (user "${userSpec}"), which this agent does not allow (allowRootTasks: false)`);
    plan.user = user;
    const caps = taskCapabilities(user.uid, config.security);
    plan.capabilities = { effective: capabilityMask(caps.effective), bounding: capabilityMask(caps.bounding) };
    if (config.security?.seccomp === 'unconfined') plan.seccomp = 'unconfined';
    // The sandbox is the task's; the launcher's own files in it (logs, .corral/) stay root's.
    chownSync(config.sandbox, user.uid, user.gid);
  }

  async cleanup(record: ContainerRecord): Promise<void> {
    if (record.rootfsState) rmSync(record.rootfsState, { recursive: true, force: true });
  }
}
