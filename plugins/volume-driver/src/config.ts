/**
 * Configuration of the volume-driver daemon (`corral volume-driver`):
 * defaults < YAML/JSON file < CORRAL_* environment < flags (common/config.ts).
 */
import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from '../../../common/validate.js';
import { httpLimitsSchema } from '../../../common/http/limits.js';
import { RBD_FEATURE_NAMES } from './options.js';

export const DEFAULT_SOCKET = '/run/docker/plugins/corral.sock';

const HOST_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export const volumeDriverConfigSchema = z.object({
  /** This host's identity in the cluster (attachment locks name it). */
  hostId: z
    .string()
    .regex(HOST_ID_RE, 'letters, digits, _ . - (max 63), starting with a letter or digit')
    .default(hostname().split('.')[0] || 'localhost'),
  /** Docker discovers the plugin by this socket's name: /run/docker/plugins/<driver>.sock. */
  socket: z.string().min(1).default(DEFAULT_SOCKET),
  /** Local volumes, mountpoints and the state database. */
  dataDir: z.string().min(1).default('/var/lib/corral/volumes'),
  defaultBackend: z.enum(['local', 'rbd']).default('local'),
  rbd: z
    .object({
      /** Unset: rbd is enabled when confFile exists. */
      enabled: z.boolean().optional(),
      confFile: z.string().min(1).default('/etc/ceph/ceph.conf'),
      /** The keyring of `clientName` (default: Ceph's own search path, /etc/ceph/ceph.<name>.keyring…). */
      keyring: z.string().min(1).optional(),
      /**
       * The Ceph client every rbd, rados and librados call of the driver uses: `client.<id>`, or the bare id
       * as Ceph's `--id` takes it. Provisioned hosts use their own least-privilege client
       * (client.corral-volumes-<host>: `profile rbd` on the volume pools); client.admin when nothing is given.
       */
      clientName: z
        .preprocess((v) => (typeof v === 'string' && v !== '' && !v.startsWith('client.') ? `client.${v}` : v), z.string().regex(/^client\.[a-zA-Z0-9_.-]+$/, 'client.<id> or <id>'))
        .default('client.admin'),
      /** Pool of the registry, locks and beacons, and the default pool of images. */
      pool: z
        .string()
        .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/)
        .default('corral'),
      // No exclusive-lock by default: corral's own attach lock already guarantees one writer, and librbd's
      // lock hand-over made a fenced host's I/O hang instead of failing.
      features: z.array(z.enum(RBD_FEATURE_NAMES)).default(['layering']),
      defaultSizeBytes: z
        .number()
        .int()
        .min(16 * 1024 * 1024)
        .default(1024 ** 3),
      attach: z.enum(['auto', 'krbd', 'rbd-fuse']).default('auto'),
      timeoutSeconds: z.number().int().min(1).max(300).default(10),
      dataPathTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
      livenessTimeoutMs: z.number().int().min(1000).max(60_000).default(1000),
      livenessGraceMs: z.number().int().min(0).max(120_000).default(3000),
      // Long, so a cluster outage does not make every live host look dead; a dead host's watch still
      // answers "silent" (fence at once) until it lapses.
      watchTimeoutSeconds: z.number().int().min(1).max(3600).default(300),
      blocklistExpireSeconds: z.number().int().min(60).default(3600),
    })
    .prefault({}),
  /** Detach convergence (reconcile.ts). */
  reconcile: z
    .object({
      /** A pass at least this often; failed detaches are retried sooner, with backoff. */
      intervalMs: z.number().int().min(100).max(3_600_000).default(10_000),
      /** First retry of a failed detach, doubled per failure up to maxBackoffMs. */
      backoffMs: z.number().int().min(10).max(60_000).default(500),
      maxBackoffMs: z.number().int().min(100).max(3_600_000).default(30_000),
      /** A task's container must stay absent from the agent's list this long before its reference is released. */
      graceMs: z.number().int().min(0).max(3_600_000).default(15_000),
      /**
       * The agent's live containers (its GET /api/v1/containers), to release the references of tasks whose
       * unmount was lost. Only for a driver serving one agent: another agent's tasks would look gone.
       */
      liveContainers: z
        .object({
          url: z.string().url(),
          /** Reach the agent over this unix socket instead of TCP. */
          socketPath: z.string().min(1).optional(),
          timeoutMs: z.number().int().min(100).max(60_000).default(5000),
        })
        .optional(),
    })
    .prefault({}),
  /** The plugin socket's timeouts and connection cap (docs/security.md, "Server limits"). */
  limits: httpLimitsSchema({ maxConnections: 256, maxStreams: 64, maxStreamsPerClient: 64 }),
  log: z
    .object({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      file: z.string().optional(),
    })
    .prefault({}),
});

export type VolumeDriverConfig = z.output<typeof volumeDriverConfigSchema>;

export const statePath = (c: VolumeDriverConfig): string => join(c.dataDir, 'state.db');

export const rbdEnabled = (c: VolumeDriverConfig): boolean => c.rbd.enabled ?? existsSync(c.rbd.confFile);
