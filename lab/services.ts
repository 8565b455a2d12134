/**
 * The lab's cluster services, run inside the services namespace: a master
 * (no auth: a lab on private addresses) and one simulated agent per lab host
 * whose hostname is that host's underlay address, so the node daemons build
 * their BGP mesh from the master's agent list exactly as in production.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { masterConfigSchema } from '../core-scheduler/src/index.js';
import { startMaster } from '../core-scheduler/src/index.js';
import { SimAgent } from '../core-scheduler/src/index.js';
import { logger } from '../common/log.js';

interface LabServicesOptions {
  host: string;
  port: number;
  dir: string;
  agents: string[];
}

export async function runLabServices(o: LabServicesOptions): Promise<{ close(): Promise<void> }> {
  const log = logger('lab-services');
  mkdirSync(o.dir, { recursive: true });
  const master = await startMaster(
    masterConfigSchema.parse({
      host: o.host,
      port: o.port,
      workDir: join(o.dir, 'master'),
      noAuth: true,
      insecure: true,
      store: { backend: 'embedded', path: join(o.dir, 'master', 'registry.db'), sync: 'normal' },
      agents: { heartbeatIntervalMs: 1000, maxMissedHeartbeats: 3, unreachableTimeoutMs: 10_000, reregisterTimeoutMs: 60_000 },
    }),
  );
  const agents = o.agents.map((ip) => new SimAgent({ master: master.url, hostname: ip, resources: 'cpus:4;mem:8192;disk:20000;ports:[31000-32000]' }));
  for (const a of agents) await a.start();
  log.info({ url: master.url, agents: o.agents }, 'lab services up');
  return {
    async close() {
      for (const a of agents) await a.stop();
      await master.close();
    },
  };
}
