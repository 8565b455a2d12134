/**
 * A service framework daemon as a separate process (`corral services`), for
 * tests that must kill it for real (SIGKILL, SIGSTOP): replicated daemons
 * sharing an etcd Store.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { ServicesConfigInput } from '../../core-scheduler/src/services/config.js';
import { recordPid, forgetPid } from '../harness/resources.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServicesHealth {
  ready: boolean;
  connected: boolean;
  leading: boolean;
  state: string;
  leader: { id: string; url: string } | null;
}

export class ServicesProcess {
  private child: ChildProcess | undefined;
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  readonly url: string;
  readonly configFile: string;
  output = '';

  constructor(
    readonly workDir: string,
    readonly port: number,
    config: ServicesConfigInput,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    mkdirSync(workDir, { recursive: true });
    this.configFile = join(workDir, 'services.json');
    writeFileSync(this.configFile, JSON.stringify({ ...config, host: '127.0.0.1', port, workDir }, null, 2));
  }

  async start(): Promise<void> {
    // The config file names the master; an inherited CORRAL_MASTER would override it.
    const env = { ...process.env };
    delete env.CORRAL_MASTER;
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/corral.ts'), 'services', '--config', this.configFile], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    this.child = child;
    const pid = child.pid!;
    recordPid('services', pid);
    this.output = '';
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    this.exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        forgetPid('services', pid);
        resolve({ code, signal });
      }),
    );
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`services daemon exited early: ${this.output}`);
      try {
        if ((await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) })).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`services daemon did not come up: ${this.output}`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async health(): Promise<ServicesHealth> {
    const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as ServicesHealth;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child!.kill(signal);
  }

  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exit ?? Promise.resolve({ code: null, signal: null });
  }

  /** Kill -9 by default, as a crash would; resolves when the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    if (signal !== 'SIGKILL') child.kill('SIGCONT');
    await this.exit;
    this.child = undefined;
  }
}
