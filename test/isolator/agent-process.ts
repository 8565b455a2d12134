/**
 * Runs fixtures/agent.ts as a separate process (the "agent" whose death the
 * recovery tests simulate) and kills it hard.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ContainerConfig, Launched } from '../../contracts/containerizer.js';
import { forgetPid, recordPid } from '../harness/resources.js';
import { isAlive } from '../harness/ceph.js';

export interface AgentProcess {
  pid: number;
  launched: Map<string, Launched>;
  /** SIGKILL, as when the agent crashes; resolves once it is gone. */
  crash(): Promise<void>;
}

export async function startAgentProcess(type: 'MESOS' | 'DOCKER', options: Record<string, unknown>, configs: ContainerConfig[]): Promise<AgentProcess> {
  const { NODE_EXTRA_CA_CERTS: _slow, ...env } = process.env;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'agent.ts'), type, JSON.stringify(options), JSON.stringify(configs)], {
    cwd: join(import.meta.dirname, '../..'),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...env, CORRAL_LOG_LEVEL: 'warn' },
  });
  const pid = child.pid!;
  recordPid('iso-agent', pid);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
  const launched = new Map<string, Launched>();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent fixture not ready after 60 s: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'ready') {
        clearTimeout(timer);
        resolve();
      } else {
        const m = JSON.parse(line) as { containerId: string; launched: Launched };
        launched.set(m.containerId, m.launched);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent fixture exited (${code}): ${stderr}`));
    });
  });
  return {
    pid,
    launched,
    async crash() {
      child.kill('SIGKILL');
      while (isAlive(pid)) await new Promise((r) => setTimeout(r, 10));
      forgetPid('iso-agent', pid);
    },
  };
}
