/**
 * Discovery daemon configuration: defaults < --config file < CORRAL_* environment < flags.
 */
import { hostname } from 'node:os';
import { masterUrlsSchema, z } from '../../common/validate.js';
import { tlsConfigFields } from '../../common/tls/config.js';
import { httpLimitsSchema } from '../../common/http/limits.js';
import { storeConfigSchema } from '../../common/store/json.js';

const label = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lower-case DNS label');

export const discoveryConfigSchema = z.object({
  /**
   * HTTPS for the Consul-compatible API: `tls: { ca, cert, key }`; the CA also verifies the master the
   * feed follows. Plain HTTP only with `insecure: true` (--insecure). DNS is unchanged (UDP/TCP 53).
   */
  ...tlsConfigFields,
  /** DNS zone served, e.g. "corral" for task.framework.corral. */
  domain: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'must be lower-case DNS labels joined by dots')
    .default('corral'),
  datacenter: label.default('dc1'),
  /** This daemon's node name in the catalog (agent API services live on it). */
  nodeName: z.string().min(1).max(253).default(hostname()),
  workDir: z.string().default('/var/lib/corral/discovery'),
  /** Where the KV, sessions and registrations live; default an embedded store in workDir. */
  store: z.lazy(() => storeConfigSchema.optional()),
  master: z
    .object({
      /** Master URL, or several separated by commas (the leader among them is followed); without it only catalog and agent registrations are served. */
      url: masterUrlsSchema.optional(),
      principal: z.string().optional(),
      secret: z.string().optional(),
      initialBackoffMs: z.number().int().min(10).max(60_000).default(100),
      maxBackoffMs: z.number().int().min(10).max(600_000).default(5_000),
    })
    .default({ initialBackoffMs: 100, maxBackoffMs: 5_000 }),
  dns: z
    .object({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8600),
      /** Address published for ns1.<domain>; default the listen host (or 127.0.0.1 for a wildcard). */
      advertiseAddress: z.string().optional(),
      /** Record TTL in seconds; Consul's default 0 keeps caches from hiding changes. */
      ttl: z.number().int().min(0).max(86400).default(0),
      negativeTtl: z.number().int().min(0).max(86400).default(1),
      /** Extra processes answering UDP and TCP; "auto" = one per core beyond the first. */
      workers: z.union([z.literal('auto'), z.number().int().min(0).max(64)]).default('auto'),
      /** Resolvers for names outside the domain ("ip" or "ip:port"); none = REFUSED. */
      upstreams: z.array(z.string()).default([]),
      forwardTimeoutMs: z.number().int().min(50).max(30_000).default(2_000),
      labelRule: z.enum(['rfc1123', 'rfc952']).default('rfc1123'),
      /** EDNS0 payload size we accept and advertise (DNS flag day 2020: 1232). */
      maxUdpPayload: z.number().int().min(512).max(4096).default(1232),
      maxRotations: z.number().int().min(1).max(64).default(16),
      tcpIdleMs: z.number().int().min(100).max(300_000).default(10_000),
      tcpMaxConnections: z.number().int().min(1).max(100_000).default(1_000),
      /** UDP answered by the native recvmmsg/sendmmsg thread when its addon is built; false keeps node:dgram. */
      fastPath: z.boolean().default(true),
    })
    .default({
      host: '127.0.0.1',
      port: 8600,
      ttl: 0,
      negativeTtl: 1,
      workers: 'auto',
      upstreams: [],
      forwardTimeoutMs: 2_000,
      labelRule: 'rfc1123',
      maxUdpPayload: 1232,
      maxRotations: 16,
      tcpIdleMs: 10_000,
      tcpMaxConnections: 1_000,
      fastPath: true,
    }),
  http: z
    .object({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8500),
      /** The Consul-compatible API's timeouts and caps, blocking queries included (docs/security.md, "Server limits"). */
      limits: httpLimitsSchema(),
    })
    .prefault({}),
  sessions: z
    .object({
      ttlMinSeconds: z.number().min(1).max(86400).default(10),
      ttlMaxSeconds: z.number().min(1).max(86400).default(86400),
    })
    .default({ ttlMinSeconds: 10, ttlMaxSeconds: 86400 }),
  /**
   * Consul-compatible ACLs (see README "ACLs"). Off unless configured; the
   * node files `corral provision` writes turn them on. The bootstrap token is
   * read from `bootstrapTokenFile` (or the config file / environment as
   * `bootstrapToken`), never from a command-line flag, which any local user
   * could read from the process list.
   */
  acl: z
    .object({
      enabled: z.boolean().default(false),
      /** What applies where no rule of the token speaks: Consul's acl.default_policy. */
      defaultPolicy: z.enum(['allow', 'deny']).default('deny'),
      /** A management token's secret (Consul's initial_management); once set, /v1/acl/bootstrap is closed. */
      bootstrapToken: z.string().min(16).max(128).optional(),
      bootstrapTokenFile: z.string().optional(),
      /** Rules the anonymous token always has (HCL or JSON); the default lets DNS and catalog reads work without a token. */
      anonymousRules: z
        .string()
        .max(64 * 1024)
        .default('service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }'),
    })
    .default({ enabled: false, defaultPolicy: 'deny', anonymousRules: 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }' }),
  /** Agent host name → IP, for agents whose names the system resolver does not know. */
  agentAddresses: z.record(z.string(), z.string().regex(/^[0-9a-fA-F.:]+$/, 'must be an IP address')).default({}),
  log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), file: z.string().optional() }).default({ level: 'info' }),
});

export type DiscoveryConfig = z.output<typeof discoveryConfigSchema>;
export type DiscoveryConfigInput = z.input<typeof discoveryConfigSchema>;
