/**
 * A service framework daemon as a separate process (`corral services`), for
 * tests that must kill it for real (SIGKILL, SIGSTOP): replicated daemons
 * sharing an etcd Store.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServicesConfigInput } from '../../core-scheduler/src/services/config.js';
import { DaemonProcess } from '../harness/daemon-process.js';

export interface ServicesHealth {
  ready: boolean;
  connected: boolean;
  leading: boolean;
  state: string;
  leader: { id: string; url: string } | null;
}

/** Its environment: the config file names the master, and an inherited CORRAL_MASTER would override it. */
function servicesEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.CORRAL_MASTER;
  return env;
}

export class ServicesProcess extends DaemonProcess {
  readonly configFile: string;

  constructor(workDir: string, port: number, config: ServicesConfigInput) {
    const configFile = join(workDir, 'services.json');
    super(workDir, port, { kind: 'services', label: 'services daemon', args: ['services', '--config', configFile], env: servicesEnv, readyTimeoutMs: 30_000 });
    this.configFile = configFile;
    mkdirSync(workDir, { recursive: true });
    writeFileSync(this.configFile, JSON.stringify({ ...config, host: '127.0.0.1', port, workDir }, null, 2));
  }

  async health(): Promise<ServicesHealth> {
    const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as ServicesHealth;
  }
}
