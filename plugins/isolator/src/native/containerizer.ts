/**
 * The MESOS (native) containerizer. A launch runs the isolators' `record`
 * (checkpoint every resource about to be taken), `prepare` (cgroups, netns +
 * CNI, volumes, image), then asks the resident task launcher for a
 * supervisor, which puts the task into its cgroups and namespaces and execs
 * it; the launch resolves once exec succeeded. The supervisor survives the
 * agent: a new containerizer's `recover()` reattaches from the checkpoints
 * and termination files, and destroys what the agent no longer knows.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, conflict, errorMessage, notFound } from '../../../../contracts/errors.js';
import { logger, type Logger } from '../../../../common/log.js';
import { parseInput } from '../../../../common/validate.js';
import type { ContainerConfig, Containerizer, ExecResult, Launched, NetworkHook, RecoveredContainer, ResourceUsage, Termination, VolumeHook } from '../../../../contracts/containerizer.js';
import { KeyedMutex } from '../../../../common/mutex.js';
import { openCgroups } from '../cgroups/detect.js';
import type { CgroupDriver } from '../cgroups/types.js';
import { isSameProcess, signalIfSame } from '../../../../common/sys/process.js';
import { checkTask, commandArgv, hostCapacity, logPath, type HostCapacity } from '../task-config.js';
import { Checkpoints, identities, type ContainerRecord } from './checkpoint.js';
import { BUILTIN_MASKED_PATHS, defaultShimPath, mesosContainerizerConfigSchema, type MesosContainerizerConfig, type MesosContainerizerConfigInput } from './config.js';
import { ExitWatcher } from './exits.js';
import { ImageCache } from './images.js';
import { CgroupsIsolator } from './isolators/cgroups.js';
import { FilesystemIsolator } from './isolators/filesystem.js';
import { NamespacesIsolator } from './isolators/namespaces.js';
import { NetworkIsolator } from './isolators/network.js';
import type { Isolator, IsolatorContext, LaunchPlan } from './isolators/types.js';
import { VolumesIsolator } from './isolators/volumes.js';
import { launchFields } from './launch-request.js';
import { TaskLauncher, type Field } from './launcher.js';
import { lostTermination, readStatus, toTermination } from './termination.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface MesosContainerizerDeps {
  volumeHook?: VolumeHook;
  networkHook?: NetworkHook;
  log?: Logger;
  /** Capacity tasks are checked against (default: this host's CPUs and memory, no GPUs). */
  host?: HostCapacity;
}

interface Entry {
  record: ContainerRecord;
  termination?: Termination;
  waiters: Array<(t: Termination) => void>;
}

/** Whether a process with this pid exists at all (zombies and a reused pid included): one syscall, no /proc read. */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function createMesosContainerizer(config: MesosContainerizerConfigInput = {}, deps: MesosContainerizerDeps = {}): Promise<MesosContainerizer> {
  const c = parseInput(mesosContainerizerConfigSchema, config, 'MESOS containerizer configuration');
  const z = new MesosContainerizer(c, deps, openCgroups(c.cgroupRoot, c.cgroupVersion));
  z.start();
  return z;
}

export class MesosContainerizer implements Containerizer {
  readonly type = 'MESOS' as const;
  private readonly log: Logger;
  private readonly checkpoints: Checkpoints;
  private readonly launcher: TaskLauncher;
  private readonly isolators: Isolator[];
  private readonly containers = new Map<string, Entry>();
  private readonly mutex = new KeyedMutex();
  private readonly exits: ExitWatcher;
  private readonly host: HostCapacity;
  private sweeps = 0;

  constructor(
    private readonly config: MesosContainerizerConfig,
    deps: MesosContainerizerDeps,
    readonly cgroups: CgroupDriver,
  ) {
    this.log = deps.log ?? logger('isolator');
    this.host = deps.host ?? hostCapacity();
    this.checkpoints = new Checkpoints(config.runDir);
    mkdirSync(config.netnsDir, { recursive: true });
    this.launcher = new TaskLauncher(config.shimPath ?? defaultShimPath(), this.log);
    const hasMnt = config.namespaces.includes('mnt');
    this.isolators = [
      new FilesystemIsolator(new ImageCache(join(config.workDir, 'images')), join(config.workDir, 'rootfs'), hasMnt, config.defaultUser),
      new CgroupsIsolator(cgroups, config.cfsQuota),
      new NamespacesIsolator(config.namespaces, [config.runDir, config.netnsDir, config.workDir, ...BUILTIN_MASKED_PATHS, ...config.maskedPaths], () => this.volumeMountpoints()),
      new VolumesIsolator(deps.volumeHook, (path, id) => this.volumeInUse(path, id), config.externalVolumeChown),
      new NetworkIsolator(this.launcher, (id) => join(config.netnsDir, config.netnsPrefix + id), deps.networkHook),
    ];
    this.exits = new ExitWatcher(
      this.checkpoints.exitsDir,
      (id) => this.checkExit(id),
      () => this.sweep(),
    );
  }

  start(): void {
    this.exits.start();
  }

  /** Stops watching and closes the launcher; running tasks are left alone (a later recover() finds them). */
  async close(): Promise<void> {
    this.exits.close();
    await this.launcher.close();
  }

  /** Whether another live container of this containerizer binds `path`: a host volume, or an external volume's mount point. */
  private volumeInUse(path: string, except: string): boolean {
    for (const [id, e] of this.containers) {
      if (id === except || e.termination) continue;
      if (e.record.hostVolumes?.includes(path) || e.record.volumes.some((v) => v.mountpoint === path)) return true;
    }
    return false;
  }

  private volumeMountpoints(): string[] {
    const out: string[] = [];
    for (const e of this.containers.values()) for (const v of e.record.volumes) if (v.mountpoint) out.push(v.mountpoint);
    return out;
  }

  async launch(input: ContainerConfig): Promise<Launched> {
    const config = checkTask(input, 'MESOS', this.host);
    const id = config.containerId;
    if (this.containers.has(id) || existsSync(this.checkpoints.dir(id))) throw conflict(`container ${id} already exists on this host`);
    const command = commandArgv(config.command!);
    const record: ContainerRecord = {
      containerId: id,
      sandbox: config.sandbox,
      createdAt: new Date().toISOString(),
      memMb: config.resources.memMb,
      terminationFile: join(config.sandbox, '.corral', 'termination.json'),
      cgroups: false,
      pidNamespace: this.config.namespaces.includes('pid'),
      ipAddresses: [],
      volumes: [],
    };
    const entry: Entry = { record, waiters: [] };
    this.containers.set(id, entry);
    return this.mutex.run(id, async () => {
      const plan: LaunchPlan = {
        cgroupMkdirs: [],
        cgroupWrites: [],
        cgroupDirs: [],
        namespaces: [],
        binds: [],
        masks: [],
        ipAddresses: [],
        sandboxTarget: this.config.sandboxMountPoint,
        cwd: config.sandbox,
        env: { PATH: DEFAULT_PATH, ...config.command!.environment },
      };
      const ctx: IsolatorContext = { config, record, plan };
      try {
        for (const iso of this.isolators) iso.record(ctx);
        this.checkpoints.write(record);
        for (const iso of this.isolators) await iso.prepare(ctx);
        const files = {
          sandbox: config.sandbox,
          stdout: logPath(config.sandbox, config.logs.stdout),
          stderr: logPath(config.sandbox, config.logs.stderr),
          maxBytes: config.logs.maxBytes,
          maxFiles: config.logs.maxFiles,
          terminationFile: record.terminationFile,
          exitLink: this.checkpoints.exitFile(id),
          supervisorFile: this.checkpoints.supervisorFile(id),
        };
        record.exec = {
          cwd: plan.cwd,
          env: plan.env,
          ...(plan.user ? { user: plan.user } : {}),
          ...(plan.capabilities ? { capabilities: plan.capabilities } : {}),
          ...(plan.seccomp ? { seccomp: plan.seccomp } : {}),
        };
        Object.assign(record, identities(await this.launcher.request('launch', launchFields(id, command, plan, files))));
      } catch (err) {
        this.containers.delete(id);
        await this.release(record).catch((e: unknown) => this.log.error({ err: e, containerId: id }, 'cleanup after a failed launch failed'));
        const code = err instanceof CorralError ? err.code : 'INTERNAL';
        throw new CorralError(code, `cannot launch container ${id}: ${errorMessage(err)}`, undefined, { cause: err });
      }
      // A task as quick as `true` may be gone already (its exit notice came before the supervisor was recorded).
      // Only the notice is looked for: a supervisor that died without one is the sweep's business.
      this.checkExit(id, false);
      return this.launched(record);
    });
  }

  private launched(record: ContainerRecord): Launched {
    return { ...(record.task ? { pid: record.task.pid } : {}), ipAddresses: record.ipAddresses, ...(record.netns ? { netns: record.netns } : {}) };
  }

  private entry(id: string): Entry {
    const e = this.containers.get(id);
    if (!e) throw notFound(`no container ${id} on this host`);
    return e;
  }

  async wait(containerId: string): Promise<Termination> {
    const e = this.entry(containerId);
    if (e.termination) return e.termination;
    return new Promise((resolve) => {
      e.waiters.push(resolve);
      this.checkExit(containerId, false); // a silent supervisor is the sweep's business
    });
  }

  /** Settles the container's termination if its supervisor has reported or (with `orGone`) is gone. */
  private checkExit(id: string, orGone = true): void {
    const e = this.containers.get(id);
    if (!e || e.termination || !e.record.supervisor) return;
    const exitFile = this.checkpoints.exitFile(id);
    let status = readStatus(exitFile);
    if (!status) {
      if (!orGone) return;
      if (isSameProcess(e.record.supervisor.pid, e.record.supervisor.startTime)) return;
      // It may have written just before exiting; the sandbox copy is there even if the exits one is not.
      status = readStatus(exitFile) ?? readStatus(e.record.terminationFile);
    }
    // Then nothing is left to kill or remove there: release() does not touch cgroupfs for this container.
    if (status?.cgroupsRemoved) e.record.cgroups = false;
    this.settle(e, status ? toTermination(status, e.record.memMb) : lostTermination('the container supervisor ended without reporting a termination'));
  }

  private settle(e: Entry, t: Termination): void {
    if (e.termination) return;
    e.termination = t;
    for (const w of e.waiters.splice(0)) w(t);
  }

  /**
   * Every 2 s: a notice the watch missed is picked up from one listing of the exits directory, and a
   * supervisor that died without a word is noticed. Liveness is a kill(pid, 0) — no /proc read per
   * container and sweep, which with a thousand containers would cost the agent's thread ~0.1 s every
   * time — and every fifth sweep the full check (start time and zombie state), which also catches a
   * reused pid or a supervisor left a zombie by a late reaper.
   */
  private sweep(): void {
    const full = this.sweeps++ % 5 === 0;
    let notices: Set<string>;
    try {
      notices = new Set(readdirSync(this.checkpoints.exitsDir));
    } catch {
      notices = new Set();
    }
    for (const [id, e] of this.containers) {
      if (e.termination || !e.record.supervisor) continue;
      if (full || notices.has(id) || !pidExists(e.record.supervisor.pid)) this.checkExit(id);
    }
  }

  /** Resolves with the termination once it is known, or undefined after `ms`. */
  private ended(id: string, ms: number): Promise<Termination | undefined> {
    const e = this.containers.get(id);
    if (!e) return Promise.resolve(undefined);
    // The exit notice only: the exits watch answers when it comes, and the sweep (every 2 s, all
    // containers) covers a supervisor that died without a word — no per-container poll, which with a
    // thousand containers being killed would be a thousand /proc reads a tick.
    this.checkExit(id, false);
    if (e.termination) return Promise.resolve(e.termination);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(e.termination), ms);
      e.waiters.push((t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  }

  async kill(containerId: string, gracePeriodMs: number): Promise<void> {
    const e = this.entry(containerId);
    await this.mutex.run(containerId, async () => {
      const task = e.record.task;
      if (e.termination || !task) return;
      if (gracePeriodMs > 0 && signalIfSame(task.pid, task.startTime, 'SIGTERM')) {
        if (await this.ended(containerId, gracePeriodMs)) return;
      }
      await this.killNow(e);
    });
  }

  /**
   * SIGKILL: the namespace init (which takes its pid namespace along), then whatever is left in the
   * cgroup. With a pid namespace nothing can be left once the supervisor has reported (it reaps the
   * init, whose exit waits for the whole namespace, and removes the cgroups itself), so the cgroup
   * is not polled here, on the agent's thread, for every container; release() still sweeps it.
   */
  private async killNow(e: Entry): Promise<void> {
    const { record } = e;
    if (record.task) signalIfSame(record.task.pid, record.task.startTime, 'SIGKILL');
    const wholeNamespace = record.pidNamespace === true && record.task !== undefined && record.supervisor !== undefined;
    if (record.cgroups && !wholeNamespace) await this.cgroups.killAll(record.containerId, this.config.killTimeoutMs);
    if (record.supervisor && !(await this.ended(record.containerId, this.config.killTimeoutMs))) {
      signalIfSame(record.supervisor.pid, record.supervisor.startTime, 'SIGKILL');
      this.settle(e, lostTermination(`the container did not report its end within ${this.config.killTimeoutMs} ms of SIGKILL`));
    }
  }

  async destroy(containerId: string): Promise<void> {
    const record = this.containers.get(containerId)?.record ?? this.checkpoints.read(containerId);
    if (!record) return;
    await this.mutex.run(containerId, async () => {
      const e = this.containers.get(containerId) ?? { record, waiters: [] };
      this.containers.set(containerId, e);
      if (!e.termination) await this.killNow(e);
      await this.release(record);
      this.settle(e, lostTermination('the container was destroyed'));
      this.containers.delete(containerId);
    });
  }

  /** Every isolator's cleanup, in reverse order; all run even if one fails; the record stays until all succeed. */
  private async release(record: ContainerRecord): Promise<void> {
    let first: unknown;
    if (record.cgroups) await this.cgroups.killAll(record.containerId, this.config.killTimeoutMs).catch((err: unknown) => (first ??= err));
    for (const iso of [...this.isolators].reverse()) {
      await iso.cleanup(record).catch((err: unknown) => {
        this.log.warn({ err, containerId: record.containerId, isolator: iso.name }, 'cleanup step failed');
        first ??= err;
      });
    }
    if (first) throw first;
    this.checkpoints.remove(record.containerId);
  }

  async recover(known: ContainerConfig[]): Promise<RecoveredContainer[]> {
    const knownIds = new Set(known.map((k) => k.containerId));
    const out: RecoveredContainer[] = [];
    for (const k of known) {
      const record = this.checkpoints.read(k.containerId);
      if (!record) {
        out.push({ containerId: k.containerId, running: false, termination: lostTermination('no trace of the container on this host (destroyed, or the host rebooted)') });
        continue;
      }
      const e: Entry = this.containers.get(k.containerId) ?? { record, waiters: [] };
      this.containers.set(k.containerId, e);
      if (!record.supervisor) this.settle(e, lostTermination('the agent stopped while the container was being launched'));
      else this.checkExit(k.containerId);
      out.push({ containerId: k.containerId, running: !e.termination, launched: this.launched(record), ...(e.termination ? { termination: e.termination } : {}) });
    }
    await this.destroyOrphans(knownIds);
    return out;
  }

  /** Containers, cgroups and namespace files of this containerizer that the agent does not know. */
  private async destroyOrphans(knownIds: Set<string>): Promise<void> {
    for (const id of this.checkpoints.list()) {
      // Containers this process launched itself are known to the agent too.
      if (knownIds.has(id) || this.containers.has(id)) continue;
      this.log.info({ containerId: id }, 'destroying an orphan container');
      await this.destroy(id).catch((err: unknown) => this.log.error({ err, containerId: id }, 'cannot destroy an orphan container'));
    }
    for (const name of this.cgroups.list()) {
      if (knownIds.has(name) || this.containers.has(name)) continue;
      await this.cgroups.remove(name).catch((err: unknown) => this.log.error({ err, cgroup: name }, 'cannot remove an orphan cgroup'));
    }
    const { netnsDir, netnsPrefix } = this.config;
    for (const file of readdirSync(netnsDir).filter((f) => netnsPrefix && f.startsWith(netnsPrefix))) {
      const id = file.slice(netnsPrefix.length);
      if (knownIds.has(id) || this.containers.has(id)) continue;
      await this.launcher.request('netns-delete', [['path', join(netnsDir, file)]]).catch((err: unknown) => this.log.error({ err, netns: file }, 'cannot remove an orphan network namespace'));
    }
  }

  async exec(containerId: string, argv: string[], timeoutMs: number): Promise<ExecResult> {
    const e = this.entry(containerId);
    const { task, exec } = e.record;
    if (e.termination || !task || !isSameProcess(task.pid, task.startTime)) throw conflict(`container ${containerId} is not running`);
    const fields: Field[] = [['pid', String(task.pid)], ['timeout_ms', String(Math.max(1, Math.round(timeoutMs)))], ...argv.map((a): Field => ['arg', a])];
    if (exec) {
      fields.push(['cwd', exec.cwd], ...Object.entries(exec.env).map(([k, v]): Field => ['env', `${k}=${v}`]));
      if (exec.user) fields.push(['uid', String(exec.user.uid)], ['gid', String(exec.user.gid)], ['groups', exec.user.groups.join(',')]);
      if (exec.capabilities) fields.push(['caps_effective', exec.capabilities.effective], ['caps_bounding', exec.capabilities.bounding]);
      if (exec.seccomp) fields.push(['seccomp', exec.seccomp]);
    }
    const [status, ...rest] = await this.launcher.request('exec', fields);
    return { exitCode: status === 'timeout' ? null : Number(status), output: rest.join(' ').trim() };
  }

  async usage(containerId: string): Promise<ResourceUsage | undefined> {
    const e = this.containers.get(containerId);
    if (!e?.record.cgroups) return undefined;
    return this.cgroups.usage(containerId);
  }
}
