/**
 * Starting the node daemon (`corral cni daemon`) as its own process,
 * optionally inside a network namespace; shared by the lab, the tests and
 * the benchmarks so all three start it the same way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { CorralError } from '../../../../contracts/errors.js';
import { corralCommand, repoRoot } from '../../../../common/sys/paths.js';
import { inNamespace, tail } from '../../../../common/sys/process.js';
import { daemonRequest } from './client.js';

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


