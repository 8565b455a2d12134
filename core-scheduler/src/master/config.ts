/**
 * Master configuration: defaults < --config file < CORRAL_* environment < flags.
 */
import { z } from '../../../common/validate.js';
import { HTTP_LIMIT_KEYS, httpLimitsSchema } from '../../../common/http/limits.js';
import { storeConfigSchema } from '../../../common/store/json.js';
import { tlsConfigFields } from '../../../common/tls/config.js';

/**
 * Node flags the master's process is started with (by `corral node up`, `corral up` and the
 * benchmarks). A young generation of 32 MB semi-spaces instead of V8's 16 MB: during a burst of
 * placements a scavenge found about 40% of the young generation still alive (call bodies being
 * handled, records queued on sockets) and copied it; with twice the room, most of it has died
 * before the next one. The 10,000-agent placement bench's master used 2.8–3.1 s of CPU against
 * 3.4–3.9 s (alternating runs, docs/benchmarks.md); 24, 48, 64 and 128 MB did less.
 *
 * An old generation of 512 MB from the start, as a JVM master is given -Xms. V8 otherwise sets
 * the point of its next full collection from the heap's size after the last one, so a master that
 * grew while 10,000 agents registered over TLS marked its whole heap (~300 MB, ~0.5 s of CPU) in
 * the middle of the next burst of placements: in 4 of 5 runs. With the floor, in none of 13 (8 at
 * 512 MB, 5 at 1 GB); it ran one full collection a run instead of four (docs/benchmarks.md). Full
 * collections still run when the heap reaches it, and when native memory grows by 64 MB (over plain
 * HTTP that now happens once during a placement: request buffers kept past two scavenges).
 *
 * Flags V8 reads only at start: they cannot be set from inside the daemon.
 */
export const MASTER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--initial-old-space-size=512'];

/** Event streams one principal may hold: frameworks it subscribes, and operator event streams. */
const DEFAULT_SUBSCRIPTION_CAPS = { maxSchedulerSubscriptionsPerPrincipal: 128, maxOperatorSubscriptionsPerPrincipal: 32 };
/** Every key of the master's `limits`: the server's and its own (what `--limit` accepts). */
export const MASTER_LIMIT_KEYS: readonly string[] = [...HTTP_LIMIT_KEYS, ...Object.keys(DEFAULT_SUBSCRIPTION_CAPS)];
const httpLimits = httpLimitsSchema({ maxConnections: 16_384, maxStreams: 16_384 });
/** The server's limits plus the master's own; one object, so each key has its environment variable (CORRAL_MASTER_LIMITS__…). */
const masterLimitsSchema = httpLimits
  .unwrap()
  .extend({
    maxSchedulerSubscriptionsPerPrincipal: z.number().int().min(1).max(1_000_000).default(DEFAULT_SUBSCRIPTION_CAPS.maxSchedulerSubscriptionsPerPrincipal),
    maxOperatorSubscriptionsPerPrincipal: z.number().int().min(1).max(1_000_000).default(DEFAULT_SUBSCRIPTION_CAPS.maxOperatorSubscriptionsPerPrincipal),
  })
  .superRefine((l, ctx) => {
    // The server limits' own cross-field rules (e.g. headersTimeoutMs ≤ requestTimeoutMs).
    const r = httpLimits.safeParse(l);
    if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', path: issue.path as PropertyKey[], message: issue.message });
  })
  .prefault({});

export const masterConfigSchema = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(5050),
    /** Name other hosts reach this master by (offers carry it); defaults to `host`. */
    advertiseHost: z.string().optional(),
    workDir: z.string().default('/var/lib/corral/master'),
    store: z.lazy(() => storeConfigSchema.optional()),
    /** Security file (credentials and ACLs); required unless `noAuth`. */
    credentials: z.string().optional(),
    /** Turn authentication off: for local use only, never by default. */
    noAuth: z.boolean().default(false),
    /**
     * HTTPS: `tls: { ca, cert, key }`, or plain HTTP with `insecure: true` (one is required). The port asks
     * clients for a certificate: agents must present one (mutual TLS; its CN is the agent's principal),
     * frameworks and operators may.
     */
    ...tlsConfigFields,
    /**
     * The HTTP server's timeouts and caps (docs/security.md, "Server limits"); a fleet of 10,000 agents fits the totals.
     * Plus the master's own caps per authenticated principal: scheduler SUBSCRIBE streams (frameworks) and operator SUBSCRIBE streams.
     */
    limits: masterLimitsSchema,
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), file: z.string().optional() }).default({ level: 'info' }),
    allocation: z
      .object({
        /** Full allocation round period (also how often expired filters are noticed). */
        intervalMs: z.number().int().min(10).max(60_000).default(1000),
        /** Events (an agent added, resources returned) trigger a round for the affected agents after this delay, batched. */
        batchMs: z.number().int().min(0).max(10_000).default(5),
        /** Filter applied to declined and unused resources when the framework gives none (Mesos: 5 s). */
        defaultRefuseSeconds: z.number().min(0).max(3600).default(5),
        fairnessExcludedResourceNames: z.array(z.string()).default([]),
      })
      .default({ intervalMs: 1000, batchMs: 5, defaultRefuseSeconds: 5, fairnessExcludedResourceNames: [] }),
    agents: z
      .object({
        heartbeatIntervalMs: z.number().int().min(50).max(600_000).default(5000),
        /** An agent that misses this many heartbeats in a row counts as disconnected. */
        maxMissedHeartbeats: z.number().int().min(1).max(100).default(3),
        /** A disconnected agent is marked unreachable (its tasks LOST/UNREACHABLE) after this long. */
        unreachableTimeoutMs: z.number().int().min(0).max(3_600_000).default(10_000),
        /** After a master restart, agents not back within this long are marked unreachable. */
        reregisterTimeoutMs: z
          .number()
          .int()
          .min(0)
          .max(24 * 3_600_000)
          .default(600_000),
        /** Acknowledgements are forwarded to an agent in batches gathered over this long (one write instead of many). */
        ackBatchMs: z.number().int().min(0).max(1000).default(10),
        /**
         * Serve agents a channel (a WebSocket on GET /api/v1/agent) carrying their calls and events on one
         * connection; off, agents use the POST transport (as behind a proxy that passes no WebSocket).
         */
        channel: z.boolean().default(true),
      })
      .default({ heartbeatIntervalMs: 5000, maxMissedHeartbeats: 3, unreachableTimeoutMs: 10_000, reregisterTimeoutMs: 600_000, ackBatchMs: 10, channel: true }),
    frameworks: z
      .object({
        heartbeatIntervalSeconds: z.number().min(0.05).max(3600).default(15),
        /** Terminal tasks kept per framework for the operator API (Mesos's --max_completed_tasks_per_framework, 1000). */
        maxCompletedTasks: z.number().int().min(0).max(100_000).default(1000),
        /** Torn-down and removed frameworks kept for the operator API's completed_frameworks (Mesos's --max_completed_frameworks, 50). */
        maxCompletedFrameworks: z.number().int().min(0).max(100_000).default(50),
      })
      .default({ heartbeatIntervalSeconds: 15, maxCompletedTasks: 1000, maxCompletedFrameworks: 50 }),
    /**
     * Replicated masters: several masters share the registry in etcd and one leads, elected
     * through an etcd election (the others answer API calls with 307 to the leader).
     */
    ha: z
      .object({
        enabled: z.boolean().default(false),
        /** Election name: masters of one cluster campaign under `election/<name>/` in the store's namespace. */
        electionName: z
          .string()
          .min(1)
          .max(128)
          .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only')
          .default('corral-master'),
        /** The leader's lease: a leader that stops renewing it (crash, freeze, partition) is replaced after about this long. */
        leaseTtlSeconds: z.number().int().min(1).max(300).default(5),
        /**
         * Followers probe the leader and revoke its lease at once when it has crashed (its port refuses
         * connections, or another master answers there): a failover in under a second instead of a lease.
         * Off: only the lease decides (e.g. where a firewall answers for dead ports with resets).
         */
        crashDetection: z.boolean().default(true),
      })
      .default({ enabled: false, electionName: 'corral-master', leaseTtlSeconds: 5, crashDetection: true }),
  })
  .superRefine((c, ctx) => {
    if (c.ha.enabled && c.store?.backend !== 'etcd') {
      ctx.addIssue({ code: 'custom', path: ['ha', 'enabled'], message: `replicated masters share their registry in etcd: set store.backend to "etcd" (now ${c.store?.backend ?? 'embedded'})` });
    }
  });

export type MasterConfig = z.output<typeof masterConfigSchema>;
export type MasterConfigInput = z.input<typeof masterConfigSchema>;
