/**
 * Keeps one child process (exabgp) running: restarts it with exponential
 * backoff when it exits, resets the backoff once it has stayed up, removes a
 * stale pid file before each start (and kills a leftover of ours that still
 * holds it), and ties the child's life to the daemon's with
 * PR_SET_PDEATHSIG (setpriv) so a SIGKILLed daemon leaves no speaker behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import type { Logger } from '../../../../common/log.js';
import { processAlive, processCmdline, signalProcess } from '../../../../common/sys/process.js';
import { childExited } from '../../../../common/sys/wait.js';

interface SupervisorOptions {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  pidFile: string;
  logFile: string;
  /** Text every genuine instance has in its command line (e.g. its config path). */
  marker: string;
  initialBackoffMs: number;
  maxBackoffMs: number;
  log: Logger;
  onStart?(pid: number): void;
  onExit?(code: number | null, signal: NodeJS.Signals | null): void;
}

const STABLE_MS = 10_000;

export class Supervisor {
  private child: ChildProcess | undefined;
  private backoff: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private startedAt = 0;
  restarts = 0;

  constructor(private readonly o: SupervisorOptions) {
    this.backoff = o.initialBackoffMs;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    this.stopped = false;
    this.launch();
  }

  /** Removes the pid file; kills the process it names if it is a leftover instance of ours. */
  private clearStalePid(): void {
    if (!existsSync(this.o.pidFile)) return;
    const pid = Number(readFileSync(this.o.pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1 && pid !== this.child?.pid && processAlive(pid) && processCmdline(pid).join('\0').includes(this.o.marker)) {
      this.o.log.warn({ pid }, `killing a leftover ${this.o.name}`);
      signalProcess(pid, 'SIGKILL');
    }
    rmSync(this.o.pidFile, { force: true });
  }

  private launch(): void {
    if (this.stopped) return;
    this.clearStalePid();
    const out = openSync(this.o.logFile, 'a');
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', this.o.command, ...this.o.args], {
      env: { ...process.env, ...this.o.env },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    this.child = child;
    this.startedAt = Date.now();
    child.once('spawn', () => {
      this.o.log.info({ pid: child.pid }, `${this.o.name} started`);
      if (child.pid) this.o.onStart?.(child.pid);
    });
    child.once('error', (err) => this.o.log.error({ err }, `${this.o.name} could not be started`));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      this.o.onExit?.(code, signal);
      if (this.stopped) return;
      if (Date.now() - this.startedAt > STABLE_MS) this.backoff = this.o.initialBackoffMs;
      this.o.log.warn({ code, signal, restartInMs: this.backoff }, `${this.o.name} exited; restarting`);
      this.timer = setTimeout(() => {
        this.restarts++;
        this.launch();
      }, this.backoff);
      this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs);
    });
  }

  /** Asks the child to reload its configuration (exabgp: SIGUSR1). */
  signal(sig: NodeJS.Signals): boolean {
    return this.child?.pid !== undefined && signalProcess(this.child.pid, sig);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const child = this.child;
    if (child?.pid && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if (!(await childExited(child, 3000))) {
        child.kill('SIGKILL');
        await childExited(child, 5000);
      }
    }
    rmSync(this.o.pidFile, { force: true });
  }
}
