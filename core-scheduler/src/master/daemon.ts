/**
 * Starting and stopping a master process: store, registry, security, HTTP.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../contracts/errors.js';
import { HttpServer } from '../../../common/http/server.js';
import { Metrics } from '../../../common/metrics.js';
import { openStore } from '../../../common/store/json.js';
import type { Store } from '../../../contracts/store/types.js';
import { Registry } from './registry.js';
import { Authority, loadSecurity } from './auth.js';
import { Master, realClock, type Clock } from './master.js';
import type { MasterConfig } from './config.js';
import { mountSchedulerApi } from './http/scheduler-api.js';
import { mountAgentApi } from './http/agent-api.js';
import { mountOperatorApi } from './http/operator-api.js';
import { mountStoreApi } from './http/store-api.js';

export interface RunningMaster {
  master: Master;
  url: string;
  port: number;
  store: Store;
  close(): Promise<void>;
}

export async function startMaster(config: MasterConfig, opts: { clock?: Clock } = {}): Promise<RunningMaster> {
  let auth: Authority;
  if (config.noAuth) auth = new Authority(undefined);
  else if (config.credentials) auth = new Authority(loadSecurity(config.credentials));
  else throw new CorralError('INVALID_ARGUMENT', 'authentication is on but no security file was given: pass --credentials FILE, or --no-auth for local use only');

  mkdirSync(config.workDir, { recursive: true });
  const store = await openStore(config.store ?? { backend: 'embedded', path: join(config.workDir, 'registry.db') });
  try {
    const registry = new Registry(store);
    const snapshot = await registry.load();
    const metrics = new Metrics('corral_master');
    const master = new Master(config, registry, auth, opts.clock ?? realClock, metrics);
    master.recover(snapshot);
    const server = new HttpServer({ name: 'master', metrics });
    mountSchedulerApi(server, master);
    mountAgentApi(server, master);
    mountOperatorApi(server, master);
    mountStoreApi(server, master, store);
    metrics.serve(server);
    const url = await server.listen({ host: config.host, port: config.port });
    (master.info as { port: number }).port = server.port;
    master.info.address.port = server.port;
    master.info.pid = `master@${master.info.address.ip}:${server.port}`;
    master.start();
    master.log.info({ url, cluster: registry.clusterId, auth: auth.enabled }, 'master listening');
    return {
      master,
      url,
      port: server.port,
      store,
      async close() {
        master.stop();
        await server.close();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
