/**
 * A real agent as a child process (`corral agent`), with names unique to the
 * test run (cgroup root, run dir, netns prefix), so a test can SIGKILL it and
 * start it again on the same work directory.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, writeFileSync, existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { recordPid, forgetPid } from './resources.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const execFileP = promisify(execFile);

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // busy or gone: the suite's cleanup script tries again
  }
}

export interface AgentProcessOptions {
  master: string;
  dir: string;
  resources?: string;
  containerizers?: Array<'MESOS' | 'DOCKER'>;
  dockerSocket?: string;
  extra?: Record<string, unknown>;
  /** Extra node flags for the agent process (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

export class AgentProcess {
  private child: ChildProcess | undefined;
  readonly tag = randomBytes(3).toString('hex');
  readonly cgroupRoot = `corral-test-${this.tag}`;
  readonly configFile: string;
  url: string | undefined;
  id: string | undefined;
  output = '';

  constructor(readonly opts: AgentProcessOptions) {
    mkdirSync(opts.dir, { recursive: true });
    mkdirSync(join(opts.dir, 'cni'), { recursive: true });
    this.configFile = join(opts.dir, 'agent.yaml');
    writeFileSync(
      this.configFile,
      stringify({
        master: opts.master,
        workDir: join(opts.dir, 'agent'),
        host: '127.0.0.1',
        port: 0,
        noAuth: true,
        // Plain HTTP, said explicitly, unless the test gives the agent a certificate.
        ...(opts.extra?.tls ? {} : { insecure: true }),
        resources: opts.resources ?? 'cpus:4;mem:4096;disk:10000;ports:[31000-31100]',
        containerizers: opts.containerizers ?? ['MESOS'],
        ...(opts.dockerSocket ? { docker: { socket: opts.dockerSocket } } : {}),
        mesos: { runDir: join(opts.dir, 'run'), cgroupRoot: this.cgroupRoot, netnsPrefix: `ct-ag${this.tag}-` },
        cniConfDir: join(opts.dir, 'cni'),
        volumeSocket: join(opts.dir, 'no-volume-plugin.sock'),
        tasks: { defaultGracePeriodMs: 2000, pidsLimit: 512 },
        log: { level: 'warn' },
        ...opts.extra,
      }),
    );
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [...(this.opts.nodeArgs ?? []), '--import', 'tsx', join(ROOT, 'cli/corral.ts'), 'agent', '--config', this.configFile], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    recordPid('agent', child.pid!);
    this.output = '';
    child.stderr!.on('data', (d) => (this.output += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not start: ${this.output}`)), 30_000);
      child.stdout!.on('data', (d: Buffer) => {
        this.output += d;
        const m = /corral agent (\S+) serving (\S+)/.exec(this.output);
        if (m) {
          clearTimeout(timer);
          this.id = m[1];
          this.url = m[2];
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agent exited with ${code}: ${this.output}`));
      });
    });
  }

  /** SIGKILL (a crash) by default; SIGTERM for a clean stop. Tasks keep running either way. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    forgetPid('agent', child.pid!);
    this.child = undefined;
  }

  /** Processes still in this run's cgroups (v1 pids hierarchy), i.e. tasks alive on the host. */
  taskPids(): number[] {
    const root = `/sys/fs/cgroup/pids/${this.cgroupRoot}`;
    if (!existsSync(root)) return [];
    const pids: number[] = [];
    for (const c of readdirSync(root, { withFileTypes: true })) {
      if (!c.isDirectory()) continue;
      const procs = join(root, c.name, 'cgroup.procs');
      if (existsSync(procs)) pids.push(...readFileSync(procs, 'utf8').split('\n').filter(Boolean).map(Number));
    }
    return pids;
  }

  /**
   * After the tests (also failed ones): end the tasks this agent left running,
   * by the pids in its cgroups, then remove its cgroups and task namespaces.
   */
  async cleanup(): Promise<void> {
    await this.stop('SIGTERM');
    for (let i = 0; i < 3 && this.taskPids().length; i++) {
      for (const pid of this.taskPids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const h of readdirSync('/sys/fs/cgroup')) {
      const root = join('/sys/fs/cgroup', h, this.cgroupRoot);
      if (!existsSync(root)) continue;
      for (const c of readdirSync(root, { withFileTypes: true })) if (c.isDirectory()) rmdirQuiet(join(root, c.name));
      rmdirQuiet(root);
    }
    const netnsDir = '/run/netns';
    if (existsSync(netnsDir)) {
      for (const ns of readdirSync(netnsDir)) if (ns.startsWith(`ct-ag${this.tag}-`)) await execFileP('ip', ['netns', 'delete', ns]).catch(() => undefined);
    }
  }

  /** Cgroup directories of this run left in any hierarchy (should be none after cleanup). */
  leftoverCgroups(): string[] {
    const out: string[] = [];
    for (const h of readdirSync('/sys/fs/cgroup')) {
      const dir = join('/sys/fs/cgroup', h, this.cgroupRoot);
      if (existsSync(dir) && readdirSync(dir, { withFileTypes: true }).some((e) => e.isDirectory())) out.push(dir);
    }
    return out;
  }
}
