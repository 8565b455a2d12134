/**
 * The process `corral up` leaves running: it owns the single-node cluster's
 * components and stops them together on SIGTERM.
 */
import { join } from 'node:path';
import { writeFileSync, rmSync } from 'node:fs';
import { configureLogging, logger } from '../../common/log.js';
import { masterConfigSchema } from '../../core-scheduler/src/master/config.js';
import { startMaster } from '../../core-scheduler/src/master/daemon.js';
import { OperatorClient } from '../../core-scheduler/src/client/operator-client.js';
import { Demo } from '../../core-scheduler/src/sim/demo.js';
import { ensureSecurityFile, credentialOf } from './security.js';

export interface UpOptions {
  workDir: string;
  port: number;
  agents: number;
  agentResources: string;
}

export const paths = (workDir: string) => ({
  pid: join(workDir, 'supervisor.pid'),
  log: join(workDir, 'corral.log'),
  security: join(workDir, 'security.yaml'),
  master: join(workDir, 'master'),
});

export async function supervise(o: UpOptions): Promise<void> {
  const p = paths(o.workDir);
  configureLogging({ level: 'info', file: p.log });
  const log = logger('supervisor');
  const security = ensureSecurityFile(p.security);
  const master = await startMaster(masterConfigSchema.parse({ host: '127.0.0.1', port: o.port, workDir: p.master, credentials: p.security, log: { level: 'info', file: p.log } }));
  writeFileSync(p.pid, String(process.pid));
  const admin = credentialOf(security, 'admin');
  const ops = new OperatorClient({ master: master.url, ...admin });
  await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'web', weight: 2 }] } });
  await ops.close();
  const demo = new Demo({
    master: master.url,
    agents: o.agents,
    agentResources: o.agentResources,
    credentials: { framework: credentialOf(security, 'frameworks'), agent: credentialOf(security, 'agents') },
  });
  await demo.start();
  log.info({ url: master.url }, 'corral is up');
  const stop = async (): Promise<void> => {
    log.info('stopping');
    await demo.stop();
    await master.close();
    rmSync(p.pid, { force: true });
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}
