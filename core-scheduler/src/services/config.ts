/**
 * Service framework daemon configuration: defaults < --config file <
 * CORRAL_SERVICES_* environment < flags (e.g. CORRAL_SERVICES_MASTER__URL,
 * CORRAL_SERVICES_UNREACHABLE__REPLACE_AFTER_SECONDS).
 */
import { masterUrlsSchema, z } from '../../../common/validate.js';
import { tlsConfigFields } from '../../../common/tls/config.js';
import { httpLimitsSchema } from '../../../common/http/limits.js';
import { storeConfigSchema } from '../../../common/store/json.js';
import { roleSchema } from '../../../contracts/v1/v1-schema.js';

export const SERVICES_ENV_PREFIX = 'CORRAL_SERVICES_';

export const servicesConfigSchema = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(5052),
    workDir: z.string().default('/var/lib/corral/services'),
    /** Where apps, instances and the framework id live; default an embedded Store in workDir. */
    store: z.lazy(() => storeConfigSchema.optional()),
    /** Security file whose operators may use this API (the master's file works); required unless noAuth. */
    credentials: z.string().optional(),
    /** Turn API authentication off: for local use only. */
    noAuth: z.boolean().default(false),
    /**
     * HTTPS for the API: `tls: { ca, cert, key }`; the same CA and certificate are used towards the master
     * (and its store API). Plain HTTP only with `insecure: true` (--insecure).
     */
    ...tlsConfigFields,
    master: z
      .object({
        /** The master, or several separated by commas: the framework subscribes to the leader among them. */
        url: masterUrlsSchema.default('http://127.0.0.1:5050'),
        /** The framework's own credential at the master. */
        principal: z.string().min(1).optional(),
        secret: z.string().min(1).optional(),
        reconnectInitialMs: z.number().int().min(10).max(60_000).default(200),
        reconnectMaxMs: z.number().int().min(10).max(600_000).default(10_000),
        subscribeTimeoutMs: z.number().int().min(100).max(600_000).default(15_000),
      })
      .refine((m) => (m.principal === undefined) === (m.secret === undefined), { message: 'principal and secret go together', path: ['secret'] })
      .default({ url: 'http://127.0.0.1:5050', reconnectInitialMs: 200, reconnectMaxMs: 10_000, subscribeTimeoutMs: 15_000 }),
    framework: z
      .object({
        /** Also the DNS label: tasks resolve as <app>.<name>.<domain>. */
        name: z
          .string()
          .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lower-case DNS label')
          .default('corral-services'),
        user: z.string().max(256).default(''),
        /** How long the master keeps our tasks while this daemon is away (default one week). */
        failoverTimeoutSeconds: z
          .number()
          .min(0)
          .max(365 * 24 * 3600)
          .default(7 * 24 * 3600),
        /** Roles held even when no app uses them. */
        roles: z.array(roleSchema).min(1).default(['*']),
        hostname: z.string().max(256).optional(),
      })
      .default({ name: 'corral-services', user: '', failoverTimeoutSeconds: 7 * 24 * 3600, roles: ['*'] }),
    offers: z
      .object({
        /** Filter on declined resources while instances wait. */
        refuseSeconds: z.number().min(0).max(3600).default(5),
        /** Filter on offers when nothing waits. */
        idleRefuseSeconds: z.number().min(0).max(86_400).default(120),
      })
      .default({ refuseSeconds: 5, idleRefuseSeconds: 120 }),
    reconcile: z.object({ intervalSeconds: z.number().min(1).max(86_400).default(60) }).default({ intervalSeconds: 60 }),
    unreachable: z
      .object({
        /** A TASK_UNREACHABLE instance is relaunched elsewhere after this long (its old task is killed if it returns). */
        replaceAfterSeconds: z
          .number()
          .min(0)
          .max(7 * 24 * 3600)
          .default(60),
      })
      .default({ replaceAfterSeconds: 60 }),
    /**
     * Several daemons, one leader (elected in etcd; the Store must be etcd and shared by all of them).
     * Standbys send API calls to the leader (307) and take over when it goes.
     */
    ha: z
      .object({
        enabled: z.boolean().default(false),
        /** The leader's etcd lease: a crashed leader is replaced within about this long. */
        leaseTtlSeconds: z.number().int().min(1).max(300).default(5),
        /** Standbys revoke a crashed leader's lease at once (its port refuses connections); off: the lease alone decides. */
        crashDetection: z.boolean().default(true),
        /** Election name; default `services-<framework name>`. */
        electionName: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,128}$/, 'letters, digits, dot, dash and underscore only')
          .optional(),
        /** The URL standbys redirect to while this daemon leads; default http://<host>:<port>. */
        advertiseUrl: z.url().optional(),
      })
      .default({ enabled: false, leaseTtlSeconds: 5, crashDetection: true }),
    /** The API server's timeouts and caps (docs/security.md, "Server limits"). */
    limits: httpLimitsSchema({ maxConnections: 1024, maxConnectionsPerClient: 256 }),
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), file: z.string().optional() }).default({ level: 'info' }),
  })
  .superRefine((c, ctx) => {
    if (c.ha.enabled && c.store?.backend !== 'etcd') {
      ctx.addIssue({
        code: 'custom',
        path: ['ha', 'enabled'],
        message: 'replicated service framework daemons elect their leader in etcd: set store.backend to etcd (the same endpoints and namespace on every daemon)',
      });
    }
  });

export type ServicesConfig = z.output<typeof servicesConfigSchema>;
export type ServicesConfigInput = z.input<typeof servicesConfigSchema>;
