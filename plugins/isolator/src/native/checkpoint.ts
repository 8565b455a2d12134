/**
 * What the native containerizer keeps on the host for each container, so a
 * new agent process can find, wait for and clean up containers it did not
 * start: `<runDir>/containers/<id>/container.json` (written before any
 * resource is taken, naming every resource the container may hold), the
 * `supervisor` file next to it (the supervisor's and task's identity, written
 * by the supervisor once the task runs) and `<runDir>/exits/<id>`, where the
 * supervisor drops the termination. The run directory lives as long as the
 * processes it describes (tmpfs, /run).
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NetworkSpec, VolumeSource } from '../../../../contracts/containerizer.js';

export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/PID/stat: tells this process from a later one with the same pid. */
  startTime: string;
}

export interface ContainerRecord {
  containerId: string;
  sandbox: string;
  createdAt: string;
  /** Memory limit, for the OOM message. */
  memMb: number;
  /** The termination file the supervisor writes (in the sandbox). */
  terminationFile: string;
  /** The container has cgroups named after it under the containerizer's root. */
  cgroups: boolean;
  /**
   * The task has its own pid namespace: SIGKILL to its init ends every process of the task, and the
   * supervisor reports once they are all gone (absent in records of older builds: treated as no).
   */
  pidNamespace?: boolean;
  /** Network namespace file (isolated and CNI networking). */
  netns?: string;
  cni?: Extract<NetworkSpec, { mode: 'cni' }>;
  ipAddresses: string[];
  /** External volumes with the reference each mount holds. */
  volumes: Array<{ source: Extract<VolumeSource, { type: 'external' }>; referenceId: string; mountpoint?: string }>;
  /** Host paths bound as volumes (a persistent volume is handed to a task's user only when no other container uses it). */
  hostVolumes?: string[];
  /** How the task runs, for commands run in its container later (health checks). */
  exec?: { cwd: string; env: Record<string, string>; user?: { uid: number; gid: number; groups: number[] }; capabilities?: { effective: string; bounding: string }; seccomp?: 'unconfined' };
  /** Overlay upper/work directories of a root filesystem. */
  rootfsState?: string;
  supervisor?: ProcessIdentity;
  task?: ProcessIdentity;
}

/** The four words of a supervisor's identity line (or launch reply). */
export function identities(words: string[]): Pick<ContainerRecord, 'supervisor' | 'task'> {
  const [spid, sstart, tpid, tstart] = words;
  return { supervisor: { pid: Number(spid), startTime: sstart! }, task: { pid: Number(tpid), startTime: tstart! } };
}

export class Checkpoints {
  readonly containersDir: string;
  readonly exitsDir: string;

  constructor(readonly runDir: string) {
    this.containersDir = join(runDir, 'containers');
    this.exitsDir = join(runDir, 'exits');
    for (const d of [this.containersDir, this.exitsDir]) mkdirSync(d, { recursive: true });
  }

  dir(id: string): string {
    return join(this.containersDir, id);
  }

  exitFile(id: string): string {
    return join(this.exitsDir, id);
  }

  write(record: ContainerRecord): void {
    const dir = this.dir(record.containerId);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'container.json');
    writeFileSync(`${file}.tmp`, JSON.stringify(record));
    renameSync(`${file}.tmp`, file);
  }

  /** Written by the supervisor once the task runs: "SUPERVISOR_PID SUPERVISOR_START TASK_PID TASK_START". */
  supervisorFile(id: string): string {
    return join(this.dir(id), 'supervisor');
  }

  read(id: string): ContainerRecord | undefined {
    let record: ContainerRecord;
    try {
      record = JSON.parse(readFileSync(join(this.dir(id), 'container.json'), 'utf8')) as ContainerRecord;
    } catch {
      return undefined;
    }
    try {
      const [spid, sstart, tpid, tstart] = readFileSync(this.supervisorFile(id), 'utf8').trim().split(' ');
      if (spid && sstart && tpid && tstart) Object.assign(record, identities([spid, sstart, tpid, tstart]));
    } catch {
      // no supervisor yet (the agent stopped mid-launch)
    }
    return record;
  }

  list(): string[] {
    try {
      return readdirSync(this.containersDir);
    } catch {
      return [];
    }
  }

  /** The files are known, so they are unlinked by name (a recursive rm lists and stats first); anything else falls back to it. */
  remove(id: string): void {
    const dir = this.dir(id);
    for (const file of [this.exitFile(id), join(dir, 'container.json'), this.supervisorFile(id)]) unlinkQuiet(file);
    try {
      rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') rmSync(dir, { recursive: true, force: true });
    }
  }
}

function unlinkQuiet(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // not there: nothing to remove
  }
}
