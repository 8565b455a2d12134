/**
 * A master as a separate process (`corral master`), for tests that must kill
 * it for real (SIGKILL) and start it again on the same work directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { recordPid, forgetPid } from './resources.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export class MasterProcess {
  private child: ChildProcess | undefined;
  readonly url: string;

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
    recordPid('master', child.pid!);
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`master exited early: ${output}`);
      try {
        if ((await fetch(`${this.url}/health`)).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`master did not come up: ${output}`);
  }

  /** Kill -9, as a crash would; resolves when the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    forgetPid('master', child.pid!);
    this.child = undefined;
  }
}
