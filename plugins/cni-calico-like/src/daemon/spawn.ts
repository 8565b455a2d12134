/**
 * Starting the node daemon (`corral cni daemon`) as its own process,
 * optionally inside a network namespace; shared by the lab, the tests and
 * the benchmarks so all three start it the same way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { corralCommand, repoRoot } from '../../../../common/sys/paths.js';
import { inNamespace, tail } from '../../../../common/sys/process.js';
import { childExited, waitUntil } from '../../../../common/sys/wait.js';
import { daemonRequest } from './client.js';

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  socket: string;
  logFile: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `corral cni daemon --config FILE` (in `netns`), and waits until its socket answers. */
export async function spawnDaemon(o: { configFile: string; socket: string; logFile: string; netns?: string; cwd?: string; timeoutMs?: number }): Promise<DaemonProcess> {
  const argv = inNamespace(o.netns, [...corralCommand(), 'cni', 'daemon', '--config', o.configFile]);
  const out = openSync(o.logFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out], cwd: o.cwd ?? repoRoot() });
  closeSync(out);
  const timeoutMs = o.timeoutMs ?? 30_000;
  try {
    await waitUntil(
      async () => {
        if (!existsSync(o.socket)) return false;
        await daemonRequest(o.socket, 'GET', '/v1/status', undefined, 2000);
        return true;
      },
      {
        what: `the node daemon to answer on ${o.socket}`,
        timeoutMs,
        intervalMs: 50,
        failIf: () => (child.exitCode !== null || child.signalCode !== null ? `node daemon exited during start-up: ${tail(o.logFile)}` : undefined),
        detail: () => tail(o.logFile),
      },
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    child,
    pid: child.pid!,
    socket: o.socket,
    logFile: o.logFile,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      if (!(await childExited(child, 10_000))) {
        child.kill('SIGKILL');
        await childExited(child, 5_000);
      }
    },
  };
}
