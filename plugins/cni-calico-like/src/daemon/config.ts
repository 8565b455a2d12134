/**
 * Node daemon configuration: defaults < YAML/JSON file < CORRAL_CNI_* env
 * (via loadConfig) < flags. One schema, validated once at start-up.
 */
import { hostname } from 'node:os';
import { z } from '../../../../common/validate.js';
import { httpLimitsSchema } from '../../../../common/http/limits.js';
import { storeConfigSchema } from '../../../../common/store/index.js';
import { tlsConfigFields } from '../../../../common/tls/config.js';
import { isIp } from '../../../../common/netkit/ipv4.js';
import { poolSchema } from '../ipam/types.js';
import { masterSpecProblem } from '../../../../contracts/client/masters.js';

const ip = z.string().refine(isIp, 'an IPv4 address');

const liveSourceSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('netns') }).strict(),
  z
    .object({
      type: z.literal('http'),
      url: z.string().url(),
      /** Reach the URL's path over this unix socket (e.g. the agent's apiSocket, across network namespaces). */
      socketPath: z.string().min(1).optional(),
      timeoutMs: z.number().int().min(100).max(60_000).default(5000),
    })
    .strict(),
]);

export const bgpSchema = z
  .object({
    enabled: z.boolean().default(false),
    asn: z.number().int().min(1).max(4_294_967_295).default(64512),
    /** This host's address on the underlay: BGP source, router id and next hop. */
    localAddress: ip.optional(),
    routerId: ip.optional(),
    holdTime: z.number().int().min(3).max(65535).default(9),
    exabgp: z.string().default('/usr/sbin/exabgp'),
    python: z.string().default('/usr/bin/python3'),
    /** Kernel route protocol number of learned routes and block blackholes (ip route … proto N). */
    routeProtocol: z.number().int().min(5).max(254).default(77),
    /** Full mesh from the master's agent list (agent hostnames are underlay addresses). */
    master: z
      .object({
        /** One master URL, or every master's (comma-separated) with replicated masters: the operator client follows the leader. */
        url: z.string().refine((u) => masterSpecProblem(u) === undefined, { message: 'a master URL such as http://master:5050, or several separated by commas' }),
        principal: z.string().optional(),
        secret: z.string().optional(),
        pollMs: z.number().int().min(100).max(600_000).default(5000),
      })
      .strict()
      .optional(),
    /** Static iBGP peers (added to the mesh). */
    peers: z.array(ip).default([]),
    /** When set, peer only with these route reflectors instead of a full mesh. */
    routeReflectors: z.array(ip).default([]),
    /** eBGP peers such as a top-of-rack router. */
    externalPeers: z.array(z.object({ address: ip, asn: z.number().int().min(1).max(4_294_967_295) }).strict()).default([]),
    restart: z
      .object({ initialMs: z.number().int().min(10).max(60_000).default(100), maxMs: z.number().int().min(100).max(600_000).default(10_000) })
      .strict()
      .default({ initialMs: 100, maxMs: 10_000 }),
  })
  .strict()
  .refine((b) => !b.enabled || b.localAddress, { message: 'bgp.localAddress is required when BGP is enabled', path: ['localAddress'] });

export type BgpConfig = z.output<typeof bgpSchema>;

export const daemonConfigSchema = z
  .object({
    /** This node's name in block claims (default: the host name). */
    node: z.string().min(1).max(253).default(hostname()),
    socket: z.string().startsWith('/').max(107).default('/run/corral/cni.sock'),
    stateDir: z.string().startsWith('/').default('/var/lib/corral/cni'),
    /**
     * The cluster store of the IPAM, read as every Store's (common/store/json.ts): an etcd one takes
     * `etcdTls` and `etcdAuth` alike (provisioning gives the daemon its own certificate, user corral-cni).
     */
    store: storeConfigSchema,
    /**
     * TLS towards the master's store API (remote backend) and for the metrics listener: `tls: { ca, cert, key }`.
     * The CNI API itself is a unix socket (mode 0600), never TCP. Plain HTTP to a remote store or for metrics
     * only with `insecure: true`.
     */
    ...tlsConfigFields,
    storePrefix: z.string().default('corral/ipam/'),
    pools: z.array(poolSchema).min(1),
    /** Pools a network config without `pools` uses (default: the first pool). */
    defaultPools: z.array(z.string()).optional(),
    mtu: z.number().int().min(576).max(65535).default(1500),
    hostIfacePrefix: z
      .string()
      .regex(/^[a-z][a-z0-9]{0,8}$/)
      .default('crl'),
    /** Turn on net.ipv4.ip_forward in the daemon's namespace at start-up. */
    ipForward: z.boolean().default(true),
    loanTimeoutMs: z.number().int().min(50).max(60_000).default(2000),
    reconcile: z
      .object({
        intervalMs: z.number().int().min(0).max(3_600_000).default(30_000),
        graceMs: z.number().int().min(0).max(3_600_000).default(60_000),
        releaseEmptyBlocksAfterMs: z.number().int().min(0).max(86_400_000).default(300_000),
        keepEmptyBlocks: z.number().int().min(0).max(64).default(1),
        sources: z
          .array(liveSourceSchema)
          .min(1)
          .default([{ type: 'netns' }]),
      })
      .strict()
      .default({ intervalMs: 30_000, graceMs: 60_000, releaseEmptyBlocksAfterMs: 300_000, keepEmptyBlocks: 1, sources: [{ type: 'netns' }] }),
    bgp: bgpSchema.default({
      enabled: false,
      asn: 64512,
      holdTime: 9,
      exabgp: '/usr/sbin/exabgp',
      python: '/usr/bin/python3',
      routeProtocol: 77,
      peers: [],
      routeReflectors: [],
      externalPeers: [],
      restart: { initialMs: 100, maxMs: 10_000 },
    }),
    /** Fault injection for crash tests: hold each ADD this long between taking the address and wiring. */
    faults: z
      .object({ delayAfterAssignMs: z.number().int().min(0).max(60_000).default(0) })
      .strict()
      .default({ delayAfterAssignMs: 0 }),
    /** Optional TCP listener for Prometheus (the unix socket serves /metrics too). */
    metrics: z
      .object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535) })
      .strict()
      .optional(),
    /** The daemon socket's timeouts and connection cap (docs/security.md, "Server limits"). */
    limits: httpLimitsSchema({ maxConnections: 256, maxStreams: 64, maxStreamsPerClient: 64 }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), file: z.string().optional() })
      .strict()
      .default({ level: 'info' }),
  })
  .strict()
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    for (const p of c.pools) {
      if (names.has(p.name)) ctx.addIssue({ code: 'custom', path: ['pools'], message: `pool ${p.name} is defined twice` });
      names.add(p.name);
    }
    for (const d of c.defaultPools ?? []) {
      if (!names.has(d)) ctx.addIssue({ code: 'custom', path: ['defaultPools'], message: `unknown pool ${d}` });
    }
  });

export type DaemonConfig = z.output<typeof daemonConfigSchema>;
export type DaemonConfigInput = z.input<typeof daemonConfigSchema>;
