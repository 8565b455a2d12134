/**
 * Starting and stopping the service framework daemon: Store, state, manager,
 * the framework's subscription to the master, and the HTTP API.
 * `startServices(config)` is the programmatic entry point (`corral up` and
 * tests use it; `corral services` wraps it).
 *
 * Alone (the default), the daemon is the framework from the start. With
 * `ha.enabled`, several daemons share an etcd Store and elect a leader
 * (leadership.ts): only the leader loads the state, subscribes and serves
 * the API; the others answer it with 307 to the leader (503 while none is
 * known). A leader that loses its leadership exits, for its supervisor to
 * start it again as a standby.
 */
import { mkdirSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CorralError } from '../../../contracts/errors.js';
import { HttpServer } from '../../../common/http/server.js';
import { daemonClientTls, daemonTls } from '../../../common/tls/config.js';
import { logger, type Logger } from '../../../common/log.js';
import { Metrics } from '../../../common/metrics.js';
import { etcdConnectionOf, openStore } from '../../../common/store/json.js';
import type { Store } from '../../../contracts/store/types.js';
import { parseInput } from '../../../common/validate.js';
import { Authority, loadSecurity } from '../master/auth.js';
import { mountServicesApi, type ServingTerm } from './api.js';
import { servicesConfigSchema, type ServicesConfig, type ServicesConfigInput } from './config.js';
import { FrameworkLink } from './framework-link.js';
import { servicesLeadership, type ServicesLeadership, type WriteFence } from './leadership.js';
import { ServiceManager } from './manager.js';
import { instancePhase } from './model.js';
import { ServiceScheduler } from './scheduler.js';
import { ServicesState } from './state-store.js';

export interface RunningServices {
  config: ServicesConfig;
  /** http://host:port of the API. */
  url: string;
  port: number;
  /** The running framework's manager (throws UNAVAILABLE on a standby). */
  readonly manager: ServiceManager;
  /** The running framework's link to the master (throws UNAVAILABLE on a standby). */
  readonly link: FrameworkLink;
  store: Store;
  /** The framework id, once subscribed (undefined on a standby). */
  readonly frameworkId: string | undefined;
  /** Replicated daemons only: the election. */
  leadership?: ServicesLeadership;
  close(): Promise<void>;
}

interface StartOptions {
  /** An already open Store to use (left open on close), instead of opening `config.store`. */
  store?: Store;
  /** Replicated daemons: what to do when this leader loses its leadership (default: exit the process). */
  onLeadershipLost?(reason: string): void;
}

/** The leader's working set: everything that exists only while this daemon runs the framework. */
interface Term extends ServingTerm {
  /** Graceful end: the state is flushed, the subscription dropped (tasks keep running). */
  close(): Promise<void>;
  /** Leadership is gone: stop talking to the master and the Store at once, flushing nothing. */
  abandon(): void;
}

function authority(c: ServicesConfig): Authority {
  if (c.noAuth) return new Authority(undefined);
  if (c.credentials) return new Authority(loadSecurity(c.credentials));
  throw new CorralError('INVALID_ARGUMENT', 'authentication is on but no security file was given: pass --credentials FILE, or --no-auth for local use only');
}

function registerGauges(metrics: Metrics, term: () => Term | undefined, leadership: () => ServicesLeadership | undefined): void {
  metrics.gauge('connected', '1 while subscribed to the master', [], (g) => g.set(term()?.link.connected ? 1 : 0));
  metrics.gauge('leading', '1 while this daemon runs the framework (always 1 for a daemon alone)', [], (g) => {
    const l = leadership();
    g.set(l ? (l.serving ? 1 : 0) : term() ? 1 : 0);
  });
  metrics.gauge('apps', 'Apps known', [], (g) => g.set(term()?.manager.listApps().length ?? 0));
  metrics.gauge('instances', 'Instances by phase', ['phase'], (g) => {
    g.reset();
    const manager = term()?.manager;
    if (!manager) return;
    const now = Date.now();
    for (const app of manager.listApps()) for (const i of manager.instancesOf(app.spec.id)) g.inc({ phase: instancePhase(i, now) });
  });
}

/** Load the state and start the framework: what a daemon alone does at once, and a leader once elected. */
async function startTerm(config: ServicesConfig, store: Store, url: string, metrics: Metrics, log: Logger, fence?: WriteFence): Promise<Term> {
  const tls = daemonClientTls(config);
  const state = new ServicesState(store, `corral/services/${config.framework.name}`, log, fence);
  const loaded = await state.load();
  const manager = new ServiceManager({ state, log, unreachableReplaceMs: config.unreachable.replaceAfterSeconds * 1000, baseRoles: config.framework.roles });
  manager.load(loaded);
  const scheduler = new ServiceScheduler(manager, {
    refuseSeconds: config.offers.refuseSeconds,
    idleRefuseSeconds: config.offers.idleRefuseSeconds,
    reconcileIntervalMs: config.reconcile.intervalSeconds * 1000,
    log,
    metrics,
  });
  const link = new FrameworkLink({
    master: config.master.url,
    principal: config.master.principal,
    secret: config.master.secret,
    ...(tls && { tls }),
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
  link.start();
  scheduler.start();
  manager.changed();
  log.info({ master: config.master.url, framework: config.framework.name, apps: loaded.apps.length, instances: loaded.instances.length }, 'service framework running');
  return {
    manager,
    link,
    async close() {
      await link.stop().catch((err: unknown) => log.warn({ err }, 'error while stopping'));
      scheduler.stop();
      await manager.close().catch((err: unknown) => log.warn({ err }, 'error while stopping'));
    },
    abandon() {
      scheduler.stop();
      void link.stop().catch(() => undefined);
      void state.close().catch(() => undefined);
    },
  };
}

export async function startServices(input: ServicesConfigInput, opts: StartOptions = {}): Promise<RunningServices> {
  const config = parseInput(servicesConfigSchema, input, 'services config');
  const log = logger('services');
  const auth = authority(config);
  const tls = daemonTls(config, { daemon: 'the service framework', envPrefix: 'CORRAL_SERVICES_' });
  const clientTls = daemonClientTls(config);
  mkdirSync(config.workDir, { recursive: true });
  const store = opts.store ?? (await openStore(config.store ?? { backend: 'embedded', path: join(config.workDir, 'services.db') }, { remoteTls: clientTls }));
  const cleanups: Array<() => Promise<unknown> | unknown> = opts.store ? [] : [() => store.close()];
  const closeAll = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch((err: unknown) => log.warn({ err }, 'error while stopping'));
  };
  try {
    const metrics = new Metrics('corral_services');
    const server = new HttpServer({ name: 'services', metrics, log, limits: config.limits, limitsHint: { configPath: 'limits', envPrefix: 'CORRAL_SERVICES_' }, tls: tls && { material: tls } });
    let term: Term | undefined;
    let leadership: ServicesLeadership | undefined;
    // A leader serves once it has loaded its state; a daemon alone as soon as its term exists.
    const serving = (): Term | undefined => (leadership && !leadership.serving ? undefined : term);
    mountServicesApi(server, { serving, leadership: () => leadership, auth, frameworkName: config.framework.name, masterUrl: config.master.url });
    registerGauges(metrics, serving, () => leadership);
    metrics.serve(server);
    const url = await server.listen({ host: config.host, port: config.port });
    cleanups.push(() => server.close());
    cleanups.push(async () => {
      // Stop the framework first (its last writes go out under the fence), then resign.
      const t = term;
      term = undefined;
      await t?.close();
      await leadership?.close();
    });
    if (!config.ha.enabled) {
      term = await startTerm(config, store, url, metrics, log);
    } else {
      const s = config.store!;
      // Unique per process: a restarted daemon is a new candidate.
      const id = `${config.framework.hostname ?? hostname()}-${randomUUID().slice(0, 8)}`;
      leadership = servicesLeadership({
        etcd: etcdConnectionOf(s),
        electionName: config.ha.electionName ?? `services-${config.framework.name}`,
        leaseTtlSeconds: config.ha.leaseTtlSeconds,
        crashDetection: config.ha.crashDetection,
        ...(tls?.ca !== undefined && { probe: { ca: tls.ca } }),
        self: { id, url: config.ha.advertiseUrl ?? url },
        onElected: async (fence) => {
          term = await startTerm(config, store, url, metrics, log, fence);
        },
        onLost: (reason) => {
          const t = term;
          term = undefined;
          t?.abandon();
          (opts.onLeadershipLost ?? exitAfterLostLeadership)(reason);
        },
      });
      leadership.start();
      log.info({ url, election: config.ha.electionName ?? `services-${config.framework.name}`, id }, 'services daemon listening; standing for election');
    }
    log.info({ url, master: config.master.url, framework: config.framework.name, auth: auth.enabled, replicated: config.ha.enabled }, 'services listening');
    const current = (): Term => {
      const t = serving();
      if (!t) throw new CorralError('UNAVAILABLE', 'this services daemon does not run the framework (it is a standby)');
      return t;
    };
    return {
      config,
      url,
      port: server.port,
      get manager() {
        return current().manager;
      },
      get link() {
        return current().link;
      },
      store,
      get frameworkId() {
        return serving()?.link.frameworkId;
      },
      ...(leadership && { leadership }),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** As a master does: a deposed leader stops, and its supervisor starts a fresh standby. */
function exitAfterLostLeadership(reason: string): void {
  logger('services').fatal({ reason }, 'exiting: this daemon lost the service framework leadership and must not act on stale state');
  process.exitCode = 1;
  setImmediate(() => process.exit(1));
}
