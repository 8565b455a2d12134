/**
 * Starting and stopping a master process: store, registry, security, HTTP.
 *
 * With `ha.enabled` the master is one of several sharing the registry in etcd:
 * it listens at once (followers answer 307 to the leader), campaigns, and only
 * when elected recovers the registry and starts serving (leadership.ts).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../contracts/errors.js';
import { HttpServer } from '../../../common/http/server.js';
import { Metrics } from '../../../common/metrics.js';
import { etcdConnectionOf, openStore } from '../../../common/store/json.js';
import type { Store } from '../../../contracts/store/types.js';
import { Registry } from './registry.js';
import { Authority, loadSecurity } from './auth.js';
import { Master, realClock, type Clock } from './master.js';
import { MasterShell } from './shell.js';
import type { MasterConfig } from './config.js';
import { mountSchedulerApi } from './http/scheduler-api.js';
import { mountAgentApi } from './http/agent-api.js';
import { mountOperatorApi } from './http/operator-api.js';
import { mountStoreApi } from './http/store-api.js';
import { LeaderGatedServer } from './http/leader-gate.js';
import { masterLeadership, type Leadership } from './leadership.js';
import { logger } from '../../../common/log.js';
import { daemonTls } from '../../../common/tls/config.js';

export interface RunningMaster {
  /** The core's state (read-only use: tests and views). */
  master: Master;
  shell: MasterShell;
  url: string;
  port: number;
  store: Store;
  /** Replicated masters only: the election state. */
  leadership?: Leadership;
  close(): Promise<void>;
}

interface StartOptions {
  clock?: Clock;
  /**
   * Replicated masters: called once when this master loses leadership for good (after it
   * stopped writing). Default: exit the process with status 1, so a supervisor restarts it
   * as a follower with fresh state, as a Mesos master does.
   */
  onLeadershipLost?: (reason: string) => void;
}

export async function startMaster(config: MasterConfig, opts: StartOptions = {}): Promise<RunningMaster> {
  let auth: Authority;
  if (config.noAuth) auth = new Authority(undefined);
  else if (config.credentials) auth = new Authority(loadSecurity(config.credentials));
  else throw new CorralError('INVALID_ARGUMENT', 'authentication is on but no security file was given: pass --credentials FILE, or --no-auth for local use only');
  // Agents and frameworks share the port: a client certificate is asked for, required by the agent API (agent-api.ts).
  const tls = daemonTls(config, { daemon: 'the master', envPrefix: 'CORRAL_MASTER_' });

  mkdirSync(config.workDir, { recursive: true });
  const store = await openStore(config.store ?? { backend: 'embedded', path: join(config.workDir, 'registry.db') });
  try {
    const ha = config.ha.enabled;
    const registry = new Registry(store);
    // A replicated master reads the registry only once elected (below).
    const snapshot = ha ? undefined : await registry.load();
    const metrics = new Metrics('corral_master');
    const clock = opts.clock ?? realClock;
    const master = new Master(config, auth, clock, metrics);
    let leadership: Leadership | undefined;
    let ended = false;
    const end = (reason: string): void => {
      if (ended) return;
      ended = true;
      (opts.onLeadershipLost ?? exitAfterLostLeadership)(reason);
    };
    // A registry write failed: the state in memory is ahead of the registry, so this master must not go on.
    // A replicated master resigns first, so another takes over without waiting for its lease to run out.
    const shell = new MasterShell(master, registry, clock, (reason) => {
      if (leadership) void leadership.close().finally(() => end(reason));
      else end(reason);
    });
    if (snapshot) await shell.run((m) => m.recover(snapshot));
    const serverOptions = {
      name: 'master',
      metrics,
      limits: config.limits,
      limitsHint: { configPath: 'limits', envPrefix: 'CORRAL_MASTER_' },
      tls: tls && { material: tls, clientCerts: 'request' as const },
    };
    const server = ha ? new LeaderGatedServer(serverOptions, () => leadership) : new HttpServer(serverOptions);
    mountSchedulerApi(server, shell);
    mountAgentApi(server, shell, { webSocket: config.agents.channel });
    mountOperatorApi(server, shell);
    mountStoreApi(server, master, store);
    if (server instanceof LeaderGatedServer) server.mountLeaderRoutes(() => ({ master: master.info.id, uptime_seconds: Math.round((master.clock.now() - master.startedAt) / 1000) }));
    metrics.serve(server);
    const url = await server.listen({ host: config.host, port: config.port });
    (master.info as { port: number }).port = server.port;
    master.info.address.port = server.port;
    master.info.pid = `master@${master.info.address.ip}:${server.port}`;
    if (!ha) {
      shell.start();
      master.log.info({ url, cluster: registry.clusterId, auth: auth.enabled, tls: tls?.subject ?? false }, 'master listening');
    } else {
      const host = master.info.hostname.includes(':') ? `[${master.info.hostname}]` : master.info.hostname;
      const s = config.store!;
      leadership = masterLeadership({
        etcd: etcdConnectionOf(s),
        electionName: config.ha.electionName,
        leaseTtlSeconds: config.ha.leaseTtlSeconds,
        crashDetection: config.ha.crashDetection,
        // An https leader is probed as its clients reach it: against the cluster CA.
        ...(tls?.ca !== undefined && { probe: { ca: tls.ca } }),
        self: { id: master.info.id, hostname: master.info.hostname, ip: master.info.ip, port: server.port, url: `${tls ? 'https' : 'http'}://${host}:${server.port}` },
        async onElected(fence) {
          // Recovery as after a restart, every write from here on fenced by the election key.
          registry.setFence(fence);
          const recovered = await registry.load();
          await shell.run((m) => m.recover(recovered));
          shell.start();
          master.log.info({ url, cluster: registry.clusterId, auth: auth.enabled }, 'leading master serving');
        },
        onLost: (reason) => {
          shell.stop();
          end(reason);
        },
      });
      leadership.start();
      master.log.info({ url, election: config.ha.electionName, auth: auth.enabled }, 'master listening; standing for election');
    }
    return {
      master,
      shell,
      url,
      port: server.port,
      store,
      ...(leadership && { leadership }),
      async close() {
        shell.stop();
        await leadership?.close();
        await server.close();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** Mesos's answer to lost leadership or a failed registry write: stop, and let the supervisor start a fresh master. */
function exitAfterLostLeadership(reason: string): void {
  logger('master').fatal({ reason }, 'exiting: this master must not act on state the registry does not hold');
  process.exitCode = 1;
  // Let the log line out first; pino flushes on exit.
  setImmediate(() => process.exit(1));
}
