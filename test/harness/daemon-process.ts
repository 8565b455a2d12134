/**
 * A corral daemon as a separate process (`corral <command> …`), for tests
 * that must kill it for real (SIGKILL, SIGSTOP) and start it again on the same
 * work directory. It counts as up once its /health answers; its pid is on
 * record (for the suite's check of what tests left behind) while it runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { recordPid, forgetPid } from './resources.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface DaemonSpec {
  /** The kind its pid is recorded under ("master", "services"). */
  kind: string;
  /** What errors call it ("master", "services daemon"). */
  label: string;
  /** The arguments after `corral`. */
  args: string[];
  /** Its environment, read at each start. */
  env: () => NodeJS.ProcessEnv;
  /** How long it may take for /health to answer. */
  readyTimeoutMs: number;
}

export type DaemonExit = { code: number | null; signal: NodeJS.Signals | null };

export class DaemonProcess {
  private child: ChildProcess | undefined;
  private exit: Promise<DaemonExit> | undefined;
  readonly url: string;
  /** Everything the process wrote to stdout and stderr (the last start's). */
  output = '';

  constructor(
    readonly workDir: string,
    readonly port: number,
    private readonly spec: DaemonSpec,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    const { kind, label } = this.spec;
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/corral.ts'), ...this.spec.args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: this.spec.env() });
    this.child = child;
    const pid = child.pid!;
    recordPid(kind, pid);
    this.output = '';
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    this.exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        forgetPid(kind, pid);
        resolve({ code, signal });
      }),
    );
    const deadline = Date.now() + this.spec.readyTimeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${label} exited early: ${this.output}`);
      try {
        if ((await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) })).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${label} did not come up: ${this.output}`);
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
  exited(): Promise<DaemonExit> {
    return this.exit ?? Promise.resolve({ code: null, signal: null });
  }

  /** Kill -9 by default, as a crash would; resolves when the process is gone. */
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
