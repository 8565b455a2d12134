/**
 * Running corral pieces as separate processes, optionally inside a network
 * namespace: the node daemon (via the `corral` CLI) and CNI plugins exec'd
 * the way a runtime execs them. Shared by the lab, the tests and the
 * benchmarks so all three start things the same way.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CorralError } from '../../../../common/errors.js';
import { repoRoot } from '../netkit/netns.js';
import { daemonRequest } from '../daemon/client.js';

/**
 * How to run the corral CLI from here: like this process runs (from source
 * with tsx, or compiled), unless CORRAL_CNI_RUN_FROM=dist|source says otherwise
 * (benchmarks measure the compiled daemon's memory from a tsx-run script).
 */
export function corralCommand(): string[] {
  const want = process.env.CORRAL_CNI_RUN_FROM;
  const fromSource = want ? want === 'source' : fileURLToPath(import.meta.url).endsWith('.ts');
  const root = repoRoot();
  return fromSource ? [process.execPath, '--import', 'tsx', join(root, 'cli', 'corral.ts')] : [process.execPath, join(root, 'dist', 'cli', 'corral.js')];
}

/**
 * Prefixes a command with `nsenter --net=/run/netns/NAME --` when a namespace
 * is given: only the network namespace changes (nsenter execs the command, so
 * the pid is the command's). Not `ip netns exec`, which also remounts /sys in
 * a new mount namespace and so hides /sys/fs/cgroup from an agent.
 */
export function inNamespace(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...argv] : argv;
}

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  socket: string;
  logFile: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Starts `corral cni daemon --config FILE` (in `netns`), and waits until its socket answers. */
export async function spawnDaemon(o: { configFile: string; socket: string; logFile: string; netns?: string; cwd?: string; timeoutMs?: number }): Promise<DaemonProcess> {
  const argv = inNamespace(o.netns, [...corralCommand(), 'cni', 'daemon', '--config', o.configFile]);
  const out = openSync(o.logFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out], cwd: o.cwd ?? repoRoot() });
  closeSync(out);
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new CorralError('UNAVAILABLE', `node daemon exited during start-up: ${tail(o.logFile)}`);
    }
    if (existsSync(o.socket)) {
      try {
        await daemonRequest(o.socket, 'GET', '/v1/status', undefined, 2000);
        break;
      } catch {
        // not serving yet
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new CorralError('TIMEOUT', `node daemon not ready after ${o.timeoutMs ?? 30_000} ms: ${tail(o.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    pid: child.pid!,
    socket: o.socket,
    logFile: o.logFile,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      if (!(await waitExit(child, 10_000))) {
        child.kill('SIGKILL');
        await waitExit(child, 5_000);
      }
    },
  };
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** stdout parsed as JSON when it is JSON. */
  json: unknown;
}

export interface CniCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
  /** Extra environment (e.g. CORRAL_CNI_TIMEOUT); undefined values are removed. */
  env?: Record<string, string | undefined>;
}

/** Execs a CNI plugin as a runtime would: CNI_* in the environment, the config on stdin. */
export function execPlugin(binary: string, call: CniCall, config: unknown, o: { hostNetns?: string; timeoutMs?: number } = {}): Promise<PluginRun> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: call.command, CNI_PATH: call.path ?? '/usr/lib/cni' };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  for (const [k, v] of Object.entries(call.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const argv = inNamespace(o.hostNetns, [binary]);
  const input = typeof config === 'string' ? config : JSON.stringify(config);
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const child = execFile(argv[0]!, argv.slice(1), { env, timeout: o.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      let json: unknown;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr, ms, json });
    });
    child.stdin?.on('error', () => undefined); // a plugin may exit without reading stdin (VERSION)
    child.stdin?.end(input);
  });
}
