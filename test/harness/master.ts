/**
 * A real master on a free loopback port with a temporary work directory,
 * tuned for tests (fast allocation and liveness timers).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { masterConfigSchema, type MasterConfigInput } from '../../core-scheduler/src/master/config.js';
import { startMaster, type RunningMaster } from '../../core-scheduler/src/master/daemon.js';

export interface TestMaster extends RunningMaster {
  workDir: string;
  /** Stop and start again on the same work dir and port (registry survives). */
  restart(): Promise<TestMaster>;
  dispose(): Promise<void>;
}

export function testMasterConfig(workDir: string, overrides: Partial<MasterConfigInput> = {}): ReturnType<typeof masterConfigSchema.parse> {
  return masterConfigSchema.parse({
    host: '127.0.0.1',
    port: 0,
    workDir,
    noAuth: true,
    // Plain HTTP, said explicitly (a master without TLS refuses to start otherwise); TLS tests pass `tls`.
    ...(overrides.tls ? {} : { insecure: true }),
    store: { backend: 'embedded', path: join(workDir, 'registry.db'), sync: 'normal' },
    allocation: { intervalMs: 100, batchMs: 1, defaultRefuseSeconds: 5 },
    agents: { heartbeatIntervalMs: 200, maxMissedHeartbeats: 3, unreachableTimeoutMs: 1000, reregisterTimeoutMs: 5000 },
    frameworks: { heartbeatIntervalSeconds: 1 },
    ...overrides,
  });
}

export async function startTestMaster(overrides: Partial<MasterConfigInput> = {}, workDir = mkdtempSync(join(tmpdir(), 'corral-master-'))): Promise<TestMaster> {
  const config = testMasterConfig(workDir, overrides);
  const running = await startMaster(config);
  const tm: TestMaster = {
    ...running,
    workDir,
    async restart() {
      await running.close();
      return startTestMaster({ ...overrides, port: running.port }, workDir);
    },
    async dispose() {
      await running.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
  return tm;
}
