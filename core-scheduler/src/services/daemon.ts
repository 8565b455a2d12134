/**
 * Starting and stopping the service framework daemon: Store, state, manager,
 * the framework's subscription to the master, and the HTTP API.
 * `startServices(config)` is the programmatic entry point (`corral up` and
 * tests use it; `corral services` wraps it).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../contracts/errors.js';
import { HttpServer } from '../../../common/http/server.js';
import { logger } from '../../../common/log.js';
import { Metrics } from '../../../common/metrics.js';
import { openStore } from '../../../common/store/json.js';
import type { Store } from '../../../contracts/store/types.js';
import { parseInput } from '../../../common/validate.js';
import { Authority, loadSecurity } from '../master/auth.js';
import { mountServicesApi } from './api.js';
import { servicesConfigSchema, type ServicesConfig, type ServicesConfigInput } from './config.js';
import { FrameworkLink } from './framework-link.js';
import { ServiceManager } from './manager.js';
import { instancePhase } from './model.js';
import { ServiceScheduler } from './scheduler.js';
import { ServicesState } from './state-store.js';

export interface RunningServices {
  config: ServicesConfig;
  /** http://host:port of the API. */
  url: string;
  port: number;
  manager: ServiceManager;
  link: FrameworkLink;
  store: Store;
  /** The framework id, once subscribed. */
  readonly frameworkId: string | undefined;
  close(): Promise<void>;
}

interface StartOptions {
  /** An already open Store to use (left open on close), instead of opening `config.store`. */
  store?: Store;
}

function authority(c: ServicesConfig): Authority {
  if (c.noAuth) return new Authority(undefined);
  if (c.credentials) return new Authority(loadSecurity(c.credentials));
  throw new CorralError('INVALID_ARGUMENT', 'authentication is on but no security file was given: pass --credentials FILE, or --no-auth for local use only');
}

function registerGauges(metrics: Metrics, manager: ServiceManager, link: FrameworkLink): void {
  metrics.gauge('connected', '1 while subscribed to the master', [], (g) => g.set(link.connected ? 1 : 0));
  metrics.gauge('apps', 'Apps known', [], (g) => g.set(manager.listApps().length));
  metrics.gauge('instances', 'Instances by phase', ['phase'], (g) => {
    g.reset();
    const now = Date.now();
    for (const app of manager.listApps()) for (const i of manager.instancesOf(app.spec.id)) g.inc({ phase: instancePhase(i, now) });
  });
}

export async function startServices(input: ServicesConfigInput, opts: StartOptions = {}): Promise<RunningServices> {
  const config = parseInput(servicesConfigSchema, input, 'services config');
  const log = logger('services');
  const auth = authority(config);
  mkdirSync(config.workDir, { recursive: true });
  const store = opts.store ?? (await openStore(config.store ?? { backend: 'embedded', path: join(config.workDir, 'services.db') }));
  const cleanups: Array<() => Promise<unknown> | unknown> = opts.store ? [] : [() => store.close()];
  const closeAll = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch((err: unknown) => log.warn({ err }, 'error while stopping'));
  };
  try {
    const state = new ServicesState(store, `corral/services/${config.framework.name}`, log);
    const loaded = await state.load();
    const manager = new ServiceManager({ state, log, unreachableReplaceMs: config.unreachable.replaceAfterSeconds * 1000, baseRoles: config.framework.roles });
    manager.load(loaded);
    cleanups.push(() => manager.close());
    const metrics = new Metrics('corral_services');
    const scheduler = new ServiceScheduler(manager, {
      refuseSeconds: config.offers.refuseSeconds,
      idleRefuseSeconds: config.offers.idleRefuseSeconds,
      reconcileIntervalMs: config.reconcile.intervalSeconds * 1000,
      log,
      metrics,
    });
    const server = new HttpServer({ name: 'services', metrics, log });
    const url = await server.listen({ host: config.host, port: config.port });
    cleanups.push(() => server.close());
    const link = new FrameworkLink({
      master: config.master.url,
      principal: config.master.principal,
      secret: config.master.secret,
      info: {
        name: config.framework.name,
        user: config.framework.user,
        failover_timeout: config.framework.failoverTimeoutSeconds,
        checkpoint: true,
        capabilities: [{ type: 'MULTI_ROLE' }, { type: 'PARTITION_AWARE' }],
        webui_url: url,
        ...(config.master.principal ? { principal: config.master.principal } : {}),
        ...(config.framework.hostname ? { hostname: config.framework.hostname } : {}),
      },
      roles: manager.roles(),
      frameworkId: loaded.frameworkId,
      reconnectInitialMs: config.master.reconnectInitialMs,
      reconnectMaxMs: config.master.reconnectMaxMs,
      subscribeTimeoutMs: config.master.subscribeTimeoutMs,
      log,
      onSubscribed: () => scheduler.onSubscribed(),
      onEvent: (e) => scheduler.onEvent(e),
      onDisconnected: () => undefined,
      saveFrameworkId: (id) => state.saveFrameworkId(id),
    });
    scheduler.attach(link);
    cleanups.push(
      () => link.stop(),
      () => scheduler.stop(),
    );
    mountServicesApi(server, { manager, link, auth, frameworkName: config.framework.name, masterUrl: config.master.url });
    registerGauges(metrics, manager, link);
    metrics.serve(server);
    link.start();
    scheduler.start();
    manager.changed();
    log.info({ url, master: config.master.url, framework: config.framework.name, apps: loaded.apps.length, auth: auth.enabled }, 'services listening');
    return {
      config,
      url,
      port: server.port,
      manager,
      link,
      store,
      get frameworkId() {
        return link.frameworkId;
      },
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
