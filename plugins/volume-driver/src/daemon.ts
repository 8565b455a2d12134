/**
 * Assembles and runs the volume driver: the embedded state Store, the local
 * backend, the rbd backend when configured (and loadable: the addon is loaded
 * lazily and a missing one is reported, never fatal), the VolumeService, and
 * the HTTP server on the plugin socket carrying the Docker protocol, the admin
 * API and GET /metrics.
 *
 * `openVolumeService` is the embedding entry point for a process that wants
 * the service in-process (an agent running the isolator); the same service
 * then backs both Docker and native tasks.
 */
import { join } from 'node:path';
import { HttpServer } from '../../../common/http/server.js';
import { logger, type Logger } from '../../../common/log.js';
import { Metrics } from '../../../common/metrics.js';
import { openStore, type Store } from '../../../common/store/index.js';
import { radosUnavailableReason } from '../../../native/lib/rados.js';
import { LocalBackend } from './backends/local.js';
import { RbdBackend } from './backends/rbd/backend.js';
import { rbdEnabled, statePath, type VolumeDriverConfig } from './config.js';
import { registerAdminRoutes, type DriverStatus } from './plugin/admin.js';
import { registerDockerRoutes } from './plugin/docker.js';
import { VolumeService } from './service.js';
import { HttpLiveContainers } from '../../../common/live-containers.js';

export interface OpenedVolumeService {
  service: VolumeService;
  status(): DriverStatus;
  close(): Promise<void>;
}

export async function openVolumeService(config: VolumeDriverConfig, opts: { log?: Logger; metrics?: Metrics } = {}): Promise<OpenedVolumeService> {
  const log = opts.log ?? logger('volume-driver');
  const store: Store = await openStore({ backend: 'embedded', path: statePath(config) });
  const local = new LocalBackend(store, join(config.dataDir, 'local'));
  const configured = rbdEnabled(config);
  let rbd: RbdBackend | undefined;
  let rbdUnavailable: string | undefined = configured ? undefined : `not configured (no ${config.rbd.confFile}; set rbd.confFile)`;
  if (configured) {
    rbdUnavailable = radosUnavailableReason();
    if (rbdUnavailable) {
      log.warn({ reason: rbdUnavailable }, 'rbd backend unavailable; local volumes only');
    } else {
      const r = config.rbd;
      rbd = new RbdBackend(
        {
          hostId: config.hostId,
          dataDir: config.dataDir,
          confFile: r.confFile,
          keyring: r.keyring,
          clientName: r.clientName,
          pool: r.pool,
          features: r.features,
          defaultSizeBytes: r.defaultSizeBytes,
          attach: r.attach,
          timeoutSeconds: r.timeoutSeconds,
          dataPathTimeoutSeconds: r.dataPathTimeoutSeconds,
          livenessTimeoutMs: r.livenessTimeoutMs,
          livenessGraceMs: r.livenessGraceMs,
          watchTimeoutSeconds: r.watchTimeoutSeconds,
          blocklistExpireSeconds: r.blocklistExpireSeconds,
        },
        log,
        opts.metrics,
      );
      rbd.start();
    }
  }
  const { liveContainers: live, ...reconcile } = config.reconcile;
  const service = new VolumeService({
    reconcile,
    ...(live ? { liveContainers: new HttpLiveContainers(live.url, live.timeoutMs, live.socketPath) } : {}),
    hostId: config.hostId,
    store,
    backends: { local, ...(rbd ? { rbd } : {}) },
    rbdConfigured: configured,
    ...(rbdUnavailable ? { rbdUnavailable } : {}),
    defaultBackend: config.defaultBackend,
    log,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
  try {
    await service.start();
  } catch (err) {
    await service.close().catch(() => undefined);
    await store.close();
    throw err;
  }
  return {
    service,
    status: () => ({
      hostId: config.hostId,
      defaultBackend: config.defaultBackend,
      scope: service.scope,
      backends: { local: 'ok', rbd: rbd ? 'ok' : `unavailable: ${rbdUnavailable}` },
      ...(rbd ? { attachMethod: rbd.attachMethod } : {}),
      pendingDetaches: service.reconciler.pending(),
    }),
    close: async () => {
      await service.close();
      await store.close();
    },
  };
}

interface RunningVolumeDriver extends OpenedVolumeService {
  server: HttpServer;
  url: string;
}

export async function startVolumeDriver(config: VolumeDriverConfig): Promise<RunningVolumeDriver> {
  const log = logger('volume-driver');
  const metrics = new Metrics('corral_volume_driver');
  const opened = await openVolumeService(config, { log, metrics });
  const server = new HttpServer({ name: 'volume-driver', metrics, log, limits: config.limits, limitsHint: { configPath: 'limits', envPrefix: 'CORRAL_' } });
  registerDockerRoutes(server, opened.service);
  registerAdminRoutes(server, opened.service, opened.status);
  metrics.serve(server);
  let url: string;
  try {
    url = await server.listen({ socketPath: config.socket, mode: 0o600 });
  } catch (err) {
    await opened.close();
    throw err;
  }
  log.info({ socket: config.socket, hostId: config.hostId, backends: opened.status().backends }, 'volume driver listening');
  return {
    ...opened,
    server,
    url,
    close: async () => {
      await server.close();
      await opened.close();
    },
  };
}
