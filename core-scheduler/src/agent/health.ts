/**
 * Health checks of a running task: COMMAND, HTTP and TCP, with Mesos's
 * semantics — a first delay, an interval and a timeout; failures during the
 * grace period are ignored until the first success; the result travels in a
 * status update whenever it changes; after `consecutive_failures` failures in
 * a row (0 = never) the task is killed.
 *
 * A COMMAND check runs inside the task's container as the task runs (its
 * namespaces, user, capabilities, no_new_privs, seccomp), through the
 * containerizer's exec, as Mesos runs it: never on the host as the agent's
 * root. HTTP and TCP probes of a task in a private network namespace are
 * made from inside it (nsenter --net): on its own IP when it has one (CNI),
 * else on its loopback.
 */
import { connect } from 'node:net';
import { request } from 'node:http';
import type { V1TaskInfo } from '../../../contracts/v1/v1.js';
import { run } from '../../../common/sys/exec.js';

type HealthCheck = NonNullable<V1TaskInfo['health_check']>;

interface HealthTarget {
  /** Task's main process (for nsenter). */
  pid?: number;
  /** Set when the task has its own network namespace. */
  netns?: string;
  /** Its own IP (CNI), else checks go to 127.0.0.1 in its network namespace. */
  ip?: string;
  /** Own mount/pid/uts/ipc namespaces. */
  isolated: boolean;
  /** Runs a command in the task's container as the task (Containerizer.exec). */
  exec?: (argv: string[], timeoutMs: number) => Promise<{ exitCode: number | null; output: string }>;
}

interface HealthEvents {
  /** Health changed (first result, or flipped). */
  onChange(healthy: boolean, message: string): void;
  /** Too many failures in a row: the task should be killed. */
  onUnhealthy(message: string): void;
}

const PROBE = `const [kind, host, port, path, ms] = process.argv.slice(1);
const done = (ok) => process.exit(ok ? 0 : 1);
setTimeout(() => done(false), Number(ms)).unref();
if (kind === 'TCP') { const s = require('net').connect(Number(port), host, () => { s.end(); done(true); }); s.on('error', () => done(false)); }
else { const r = require('http').get({ host, port: Number(port), path, timeout: Number(ms) }, (res) => { res.resume(); done(res.statusCode >= 200 && res.statusCode < 400); }); r.on('error', () => done(false)); }`;

async function runCheck(cmd: string, args: string[], timeoutMs: number): Promise<{ ok: boolean; output: string }> {
  const r = await run(cmd, args, { timeoutMs, maxBuffer: 64 * 1024 });
  const ok = r.code === 0 && !r.timedOut;
  return { ok, output: (r.stderr || r.stdout || (ok ? '' : (r.error ?? (r.timedOut ? `timed out after ${timeoutMs} ms` : `exit ${r.code}`)))).trim().slice(0, 500) };
}

function probeDirect(kind: 'HTTP' | 'TCP', host: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      resolve(ok);
    };
    if (kind === 'TCP') {
      const s = connect(port, host, () => {
        s.end();
        finish(true);
      });
      s.on('error', () => finish(false));
    } else {
      const r = request({ host, port, path, timeout: timeoutMs }, (res) => {
        res.resume();
        finish((res.statusCode ?? 500) >= 200 && (res.statusCode ?? 500) < 400);
      });
      r.on('error', () => finish(false));
      r.end();
    }
  });
}

export class HealthChecker {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private healthy: boolean | undefined;
  private failures = 0;
  private everHealthy = false;
  private readonly startedAt = Date.now();

  constructor(
    private readonly check: HealthCheck,
    private readonly target: HealthTarget,
    private readonly events: HealthEvents,
  ) {}

  start(): void {
    this.schedule((this.check.delay_seconds ?? 15) * 1000);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const { ok, message } = await this.once();
    if (this.stopped) return;
    const inGrace = !this.everHealthy && Date.now() - this.startedAt < (this.check.grace_period_seconds ?? 10) * 1000;
    if (ok) {
      this.everHealthy = true;
      this.failures = 0;
    } else if (!inGrace) {
      this.failures++;
    }
    if (ok || !inGrace) {
      if (this.healthy !== ok) {
        this.healthy = ok;
        this.events.onChange(ok, message);
      }
      const limit = this.check.consecutive_failures ?? 3;
      if (!ok && limit > 0 && this.failures >= limit) {
        this.events.onUnhealthy(`health check failed ${this.failures} times in a row: ${message}`);
        this.stop();
        return;
      }
    }
    this.schedule((this.check.interval_seconds ?? 10) * 1000);
  }

  /** One probe. */
  async once(): Promise<{ ok: boolean; message: string }> {
    const timeoutMs = (this.check.timeout_seconds ?? 20) * 1000;
    const type = this.check.type ?? (this.check.http ? 'HTTP' : this.check.tcp ? 'TCP' : 'COMMAND');
    const { netns, ip } = this.target;
    if (type === 'COMMAND') {
      const cmd = this.check.command;
      const argv = cmd?.shell === false && cmd.value ? [cmd.value, ...(cmd.arguments ?? [])] : ['/bin/sh', '-c', cmd?.value ?? 'false'];
      if (!this.target.exec) return { ok: false, message: 'command checks need a containerizer that runs commands in the container' };
      const r = await this.target.exec(argv, timeoutMs).catch((err: unknown) => ({ exitCode: -1, output: err instanceof Error ? err.message : String(err) }));
      const ok = r.exitCode === 0;
      const why = r.exitCode === null ? `timed out after ${timeoutMs} ms` : r.output || `exit ${r.exitCode}`;
      return { ok, message: ok ? 'command succeeded' : `command failed: ${why.slice(0, 500)}` };
    }
    const port = type === 'HTTP' ? this.check.http?.port : this.check.tcp?.port;
    if (!port) return { ok: false, message: `${type} check without a port` };
    const path = this.check.http?.path ?? '/';
    const host = ip ?? '127.0.0.1';
    let ok: boolean;
    if (netns) {
      // Probe from inside the task's own network namespace (as Mesos does): its IP may be routed only on
      // the node's side of the CNI network (corral up keeps it in a node namespace), never in the agent's.
      ok = (await runCheck('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', PROBE, type, host, String(port), path, String(timeoutMs)], timeoutMs + 1000)).ok;
    } else {
      ok = await probeDirect(type, host, port, path, timeoutMs);
    }
    return { ok, message: ok ? `${type} ${host}:${port} healthy` : `${type} ${host}:${port}${type === 'HTTP' ? path : ''} not healthy` };
  }
}
