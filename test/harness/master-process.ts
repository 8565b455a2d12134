/**
 * A master as a separate process (`corral master`), for tests that must kill
 * it for real (SIGKILL, SIGSTOP) and start it again on the same work directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { recordPid, forgetPid } from './resources.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export class MasterProcess {
  private child: ChildProcess | undefined;
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  readonly url: string;
  /** Everything the process wrote to stdout and stderr (the last start's). */
  output = '';

  constructor(
    readonly workDir: string,
    readonly port: number,
    private readonly extraArgs: string[] = ['--no-auth'],
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'cli/corral.ts'), 'master', '--port', String(this.port), '--work-dir', this.workDir, '--log-level', 'warn', ...this.extraArgs],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CORRAL_MASTER_ALLOCATION__INTERVAL_MS: '100', CORRAL_MASTER_ALLOCATION__BATCH_MS: '1' } },
    );
    this.child = child;
    const pid = child.pid!;
    recordPid('master', pid);
    this.output = '';
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    this.exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        forgetPid('master', pid);
        resolve({ code, signal });
      }),
    );
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`master exited early: ${this.output}`);
      try {
        if ((await fetch(`${this.url}/health`)).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`master did not come up: ${this.output}`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Send a signal without waiting (SIGSTOP / SIGCONT to freeze and thaw the process). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child!.kill(signal);
  }

  /** Resolves when the process has exited, by itself or by a signal. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exit ?? Promise.resolve({ code: null, signal: null });
  }

  /** Kill -9, as a crash would; resolves when the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // A stopped process gets SIGKILL at once; any other signal would wait for a SIGCONT.
    child.kill(signal);
    if (signal !== 'SIGKILL') child.kill('SIGCONT');
    await this.exit;
    this.child = undefined;
  }
}

/**
 * Config file for one of several replicated masters sharing `etcdEndpoint`
 * (under `namespace`): the ha section and the etcd store. Pass it with
 * `--config <file>`.
 */
export function writeHaMasterConfig(workDir: string, opts: { etcdEndpoint: string; namespace: string; leaseTtlSeconds?: number; electionName?: string; extra?: Record<string, unknown> }): string {
  mkdirSync(workDir, { recursive: true });
  const file = join(workDir, 'master-ha.json');
  const config = {
    store: { backend: 'etcd', etcdEndpoints: [opts.etcdEndpoint], namespace: opts.namespace },
    ha: { enabled: true, leaseTtlSeconds: opts.leaseTtlSeconds ?? 5, electionName: opts.electionName ?? 'corral-master' },
    ...opts.extra,
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}
