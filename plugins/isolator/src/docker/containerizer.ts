/**
 * The DOCKER containerizer (dockerode): tasks with a Docker image, limits
 * mapped like the native cgroups, volumes by driver name, logs followed into
 * the sandbox's rotated files. Networking as Mesos does it: the container
 * runs with `--network none` (or the host's) and a CNI network is attached
 * through the NetworkHook to its namespace, /proc/<pid>/ns/net, right after
 * start. Containers carry labels, so a restarted agent finds them again
 * (`recover`) and removes those it no longer knows. A small state file per
 * container keeps what Docker cannot: the CNI addresses, the signal corral
 * sent, the log position.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Dockerode from 'dockerode';
import { signalProcess } from '../../../../common/sys/process.js';
import { CorralError, conflict, errorMessage, invalid, notFound } from '../../../../contracts/errors.js';
import { logger, type Logger } from '../../../../common/log.js';
import type { ContainerConfig, Containerizer, ExecResult, Launched, NetworkHook, NetworkSpec, RecoveredContainer, ResourceUsage, Termination } from '../../../../contracts/containerizer.js';
import { KeyedMutex } from '../../../../common/mutex.js';
import { openCgroups } from '../cgroups/detect.js';
import type { CgroupDriver } from '../cgroups/types.js';
import { REASON_MEMORY, lostTermination } from '../native/termination.js';
import { checkTask, hostCapacity, logPath, type HostCapacity } from '../task-config.js';
import { dockerMessage, ensureImage } from './images.js';
import { LogFollower } from './log-follower.js';
import { checkVolumeDriver } from './volume-drivers.js';
import { LABEL_CONTAINER, LABEL_INSTANCE, createOptions, isRootUserSpec, type DockerSpecOptions } from './spec.js';

interface DockerContainerizerOptions {
  /** dockerd's socket (default /var/run/docker.sock), or a ready client. */
  socketPath?: string;
  docker?: Dockerode;
  /** Per-container state (addresses, signal sent, log position); must outlive the agent process. */
  runDir?: string;
  /** Label value that marks this agent's containers (default "corral"). */
  instance?: string;
  sandboxMountPoint?: string;
  cfsQuota?: boolean;
  /** cgroup parent for the containers (default Docker's own, "docker"); usage() reads it. */
  cgroupParent?: string;
  networkHook?: NetworkHook;
  log?: Logger;
  host?: HostCapacity;
}

interface DockerState {
  containerId: string;
  dockerId: string;
  cni?: Extract<NetworkSpec, { mode: 'cni' }>;
  ipAddresses: string[];
  /** The last signal corral sent, to tell "killed by SIGTERM" from `exit 143`. */
  signalSent?: 'SIGTERM' | 'SIGKILL';
}

interface Entry {
  state: DockerState;
  logs?: LogFollower;
  exited?: Promise<Termination>;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGTERM: 15, SIGKILL: 9 };

/** Docker's inspect State → the contract's Termination. */
export function dockerTermination(state: { ExitCode: number; OOMKilled: boolean; Error?: string }, signalSent: string | undefined, memMb?: number): Termination {
  const code = state.ExitCode;
  const signal = signalSent && code === 128 + SIGNAL_NUMBERS[signalSent]! ? signalSent : state.OOMKilled && code === 137 ? 'SIGKILL' : null;
  const how = signal ? `killed by ${signal}` : `exited with status ${code}`;
  if (state.OOMKilled) {
    return {
      exitCode: signal ? null : code,
      signal,
      oomKilled: true,
      reason: REASON_MEMORY,
      message: `memory limit${memMb ? ` of ${memMb} MB` : ''} reached: the kernel's OOM killer ended the task (${how})`,
    };
  }
  return { exitCode: signal ? null : code, signal, oomKilled: false, message: state.Error ? `the task did not run: ${state.Error}` : `the task ${how}` };
}

export class DockerContainerizer implements Containerizer {
  readonly type = 'DOCKER' as const;
  readonly docker: Dockerode;
  private readonly log: Logger;
  private readonly runDir: string;
  private readonly spec: DockerSpecOptions;
  private readonly containers = new Map<string, Entry>();
  private readonly mutex = new KeyedMutex();
  private readonly host: HostCapacity;
  private readonly configs = new Map<string, ContainerConfig>();
  private cgroups: CgroupDriver | undefined;

  constructor(private readonly opts: DockerContainerizerOptions = {}) {
    this.docker = opts.docker ?? new Dockerode({ socketPath: opts.socketPath ?? '/var/run/docker.sock' });
    this.log = opts.log ?? logger('docker-containerizer');
    this.runDir = opts.runDir ?? '/run/corral/docker-containerizer';
    mkdirSync(this.runDir, { recursive: true });
    this.host = opts.host ?? hostCapacity();
    this.spec = { instance: opts.instance ?? 'corral', sandboxMountPoint: opts.sandboxMountPoint ?? '/mnt/mesos/sandbox', cfsQuota: opts.cfsQuota ?? true, cgroupParent: opts.cgroupParent };
  }

  private stateFile(id: string): string {
    return join(this.runDir, `${id}.json`);
  }

  private saveState(s: DockerState): void {
    writeFileSync(this.stateFile(s.containerId), JSON.stringify(s));
  }

  /** With denyRoot: the command's user, else the image's USER, must not be root (an empty USER is). */
  private async refuseRoot(config: ContainerConfig, imageName: string): Promise<void> {
    const user = config.command?.user ?? (await this.docker.getImage(imageName).inspect()).Config?.User;
    if (isRootUserSpec(user))
      throw invalid(
        `the task would run as root (${config.command?.user ? `user "${user}"` : `image ${imageName} runs as ${user || 'root'}`}), which this agent does not allow (allowRootTasks: false)`,
      );
  }

  async launch(input: ContainerConfig): Promise<Launched> {
    const config = checkTask(input, 'DOCKER', this.host);
    const id = config.containerId;
    if (this.containers.has(id)) throw conflict(`container ${id} already exists on this host`);
    if (config.network.mode === 'cni' && !this.opts.networkHook) throw invalid(`network ${config.network.network} needs CNI, but this agent has no network hook`);
    for (const v of config.volumes) {
      if (v.source.type === 'host' && !exists(v.source.path)) throw invalid(`volume host path ${v.source.path} does not exist`);
      if (v.source.type === 'sandbox') mkdirSync(join(config.sandbox, v.source.path), { recursive: true });
      if (v.source.type === 'external') await checkVolumeDriver(this.docker, v.source.driver);
    }
    const image = config.image as { kind: 'docker'; name: string; forcePull: boolean };
    const entry: Entry = { state: { containerId: id, dockerId: '', ipAddresses: [] } };
    this.containers.set(id, entry);
    this.configs.set(id, config);
    return this.mutex.run(id, async () => {
      try {
        await ensureImage(this.docker, image.name, image.forcePull);
        if (config.security?.denyRoot) await this.refuseRoot(config, image.name);
        const container = await this.docker.createContainer(createOptions(config, this.spec)).catch((err: unknown) => {
          throw new CorralError('INVALID_ARGUMENT', `Docker refused the container: ${dockerMessage(err)}`);
        });
        entry.state.dockerId = container.id;
        this.saveState(entry.state);
        await container.start().catch((err: unknown) => {
          throw new CorralError('INVALID_ARGUMENT', `the container did not start: ${dockerMessage(err)}`);
        });
        // After start: Docker ends a follow on a container that is not running yet. One that already exited is read in full.
        this.followLogs(entry, config);
        const pid = (await container.inspect()).State.Pid;
        const netns = pid > 0 ? `/proc/${pid}/ns/net` : undefined;
        if (config.network.mode === 'cni') {
          if (!netns) throw new CorralError('INVALID_ARGUMENT', 'the container ended before its network could be attached');
          entry.state.cni = config.network;
          this.saveState(entry.state);
          entry.state.ipAddresses = (await this.opts.networkHook!.attach(id, netns, config.network)).ipAddresses;
          this.saveState(entry.state);
        }
        return { ...(pid > 0 ? { pid } : {}), ipAddresses: entry.state.ipAddresses, ...(netns && config.network.mode !== 'host' ? { netns } : {}) };
      } catch (err) {
        await this.release(entry).catch((e: unknown) => this.log.error({ err: e, containerId: id }, 'cleanup after a failed launch failed'));
        this.containers.delete(id);
        const code = err instanceof CorralError ? err.code : 'INTERNAL';
        throw new CorralError(code, `cannot launch container ${id}: ${errorMessage(err)}`, undefined, { cause: err });
      }
    });
  }

  private followLogs(entry: Entry, config: Pick<ContainerConfig, 'sandbox' | 'logs'>): void {
    entry.logs = new LogFollower(this.docker.getContainer(entry.state.dockerId), {
      stdout: logPath(config.sandbox, config.logs.stdout),
      stderr: logPath(config.sandbox, config.logs.stderr),
      maxBytes: config.logs.maxBytes,
      maxFiles: config.logs.maxFiles,
      positionFile: join(this.runDir, `${entry.state.containerId}.logpos`),
    });
  }

  private entry(id: string): Entry {
    const e = this.containers.get(id);
    if (!e) throw notFound(`no container ${id} on this host`);
    return e;
  }

  async wait(containerId: string): Promise<Termination> {
    const e = this.entry(containerId);
    e.exited ??= (async () => {
      const container = this.docker.getContainer(e.state.dockerId);
      try {
        await container.wait({ condition: 'not-running' });
        const info = await container.inspect();
        // The log stream ends with the container; give it a moment to flush into the files.
        if (e.logs) await Promise.race([e.logs.done, new Promise((r) => setTimeout(r, 2000))]);
        return dockerTermination(info.State, e.state.signalSent, this.configs.get(containerId)?.resources.memMb);
      } catch (err) {
        return lostTermination(`the Docker container is gone: ${dockerMessage(err)}`);
      }
    })();
    return e.exited;
  }

  async kill(containerId: string, gracePeriodMs: number): Promise<void> {
    const e = this.entry(containerId);
    await this.mutex.run(containerId, () => this.stop(e, gracePeriodMs));
  }

  /** `docker stop -t`: SIGTERM, SIGKILL after the grace period (whole seconds, rounded up). */
  private async stop(e: Entry, gracePeriodMs: number): Promise<void> {
    const container = this.docker.getContainer(e.state.dockerId);
    const info = await container.inspect().catch(() => undefined);
    if (!info?.State.Running) return;
    e.state.signalSent = gracePeriodMs > 0 ? 'SIGTERM' : 'SIGKILL';
    this.saveState(e.state);
    const t = Math.ceil(gracePeriodMs / 1000);
    await container.stop({ t }).catch((err: { statusCode?: number }) => {
      if (err.statusCode !== 304 && err.statusCode !== 404) throw new CorralError('INTERNAL', `docker stop ${e.state.dockerId}: ${dockerMessage(err)}`);
    });
    const after = await container.inspect().catch(() => undefined);
    // Killed after the grace period: the exit code says 137 and the signal sent last was SIGKILL.
    if (after && after.State.ExitCode === 137) e.state.signalSent = 'SIGKILL';
    this.saveState(e.state);
  }

  async destroy(containerId: string): Promise<void> {
    const e = this.containers.get(containerId) ?? this.loadEntry(containerId);
    if (!e) return;
    await this.mutex.run(containerId, async () => {
      await this.release(e);
      this.containers.delete(containerId);
      this.configs.delete(containerId);
    });
  }

  /** Kill, detach the network, remove the container and its state; every step runs, the first failure is reported. */
  private async release(e: Entry): Promise<void> {
    let first: unknown;
    const step = (p: Promise<unknown>) => p.catch((err: unknown) => (first ??= err));
    if (e.state.dockerId) await step(this.stop(e, 0));
    e.logs?.stop();
    if (e.state.cni && this.opts.networkHook) await step(this.opts.networkHook.detach(e.state.containerId, undefined, e.state.cni));
    if (e.state.dockerId) {
      await step(
        this.docker
          .getContainer(e.state.dockerId)
          .remove({ force: true, v: true })
          .catch((err: { statusCode?: number }) => {
            if (err.statusCode !== 404) throw err;
          }),
      );
    }
    if (first) throw first;
    rmSync(this.stateFile(e.state.containerId), { force: true });
    rmSync(join(this.runDir, `${e.state.containerId}.logpos`), { force: true });
  }

  private loadEntry(id: string): Entry | undefined {
    try {
      return { state: JSON.parse(readFileSync(this.stateFile(id), 'utf8')) as DockerState };
    } catch {
      return undefined;
    }
  }

  async recover(known: ContainerConfig[]): Promise<RecoveredContainer[]> {
    const listed = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${this.spec.instance}`] } });
    const byId = new Map(listed.map((c) => [c.Labels[LABEL_CONTAINER]!, c.Id]));
    const out: RecoveredContainer[] = [];
    for (const k of known) {
      const dockerId = byId.get(k.containerId);
      if (!dockerId) {
        out.push({ containerId: k.containerId, running: false, termination: lostTermination('no Docker container for it on this host (removed, or the host rebooted)') });
        continue;
      }
      const e: Entry = this.loadEntry(k.containerId) ?? { state: { containerId: k.containerId, dockerId, ipAddresses: [] } };
      e.state.dockerId = dockerId;
      this.containers.set(k.containerId, e);
      this.configs.set(k.containerId, k);
      const info = await this.docker.getContainer(dockerId).inspect();
      const pid = info.State.Pid;
      const launched: Launched = { ...(pid > 0 ? { pid } : {}), ipAddresses: e.state.ipAddresses, ...(pid > 0 && k.network.mode !== 'host' ? { netns: `/proc/${pid}/ns/net` } : {}) };
      if (info.State.Running) {
        this.followLogs(e, k);
        out.push({ containerId: k.containerId, running: true, launched });
      } else {
        this.followLogs(e, k); // copies what it wrote while the agent was away
        out.push({ containerId: k.containerId, running: false, launched, termination: await this.wait(k.containerId) });
      }
    }
    const knownIds = new Set(known.map((k) => k.containerId));
    for (const [id, dockerId] of byId) {
      if (knownIds.has(id)) continue;
      this.log.info({ containerId: id, dockerId }, 'removing an orphan Docker container');
      const e = this.loadEntry(id) ?? { state: { containerId: id, dockerId, ipAddresses: [] } };
      await this.release(e).catch((err: unknown) => this.log.error({ err, containerId: id }, 'cannot remove an orphan container'));
    }
    // State files whose container no longer exists (removed by hand): free their addresses.
    for (const f of readdirSync(this.runDir).filter((n) => n.endsWith('.json'))) {
      const id = f.slice(0, -5);
      if (knownIds.has(id) || byId.has(id)) continue;
      const e = this.loadEntry(id);
      if (e) await this.release({ state: { ...e.state, dockerId: '' } }).catch(() => undefined);
    }
    return out;
  }

  /** `docker exec`: the container's user, capabilities, no-new-privileges and seccomp profile apply to it as to the task. */
  async exec(containerId: string, argv: string[], timeoutMs: number): Promise<ExecResult> {
    const e = this.containers.get(containerId);
    if (!e?.state.dockerId) throw conflict(`container ${containerId} is not running`);
    const ex = await this.docker.getContainer(e.state.dockerId).exec({ Cmd: argv, AttachStdout: true, AttachStderr: true, Privileged: false });
    const stream = await ex.start({ hijack: true, stdin: false });
    let output = '';
    const sink = new PassThrough();
    sink.on('data', (b: Buffer) => {
      if (output.length < 4096) output += b.toString('utf8');
    });
    this.docker.modem.demuxStream(stream, sink, sink);
    const ended = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      stream.on('end', () => (clearTimeout(timer), resolve(true)));
      stream.on('error', () => (clearTimeout(timer), resolve(true)));
    });
    const info = await ex.inspect();
    if (!ended) {
      // Docker has no call to kill an exec: its process, by the pid dockerd reports.
      if (info.Pid > 0) signalProcess(info.Pid, 'SIGKILL');
      stream.destroy();
      return { exitCode: null, output: output.slice(0, 4096).trim() };
    }
    return { exitCode: info.ExitCode ?? null, output: output.slice(0, 4096).trim() };
  }

  async usage(containerId: string): Promise<ResourceUsage | undefined> {
    const e = this.containers.get(containerId);
    if (!e?.state.dockerId) return undefined;
    this.cgroups ??= openCgroups(this.spec.cgroupParent?.replace(/^\/+/, '') || 'docker');
    return this.cgroups.usage(e.state.dockerId);
  }

  /** Stops following logs (positions are saved); containers keep running. */
  async close(): Promise<void> {
    for (const e of this.containers.values()) e.logs?.stop();
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
