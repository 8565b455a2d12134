/**
 * Agent configuration: defaults < --config file < CORRAL_AGENT_* env < flags.
 */
import { z } from '../../../common/validate.js';
import { httpLimitsSchema } from '../../../common/http/limits.js';
import { masterSpecProblem } from '../../../contracts/client/masters.js';
import { tlsConfigFields } from '../../../common/tls/config.js';

export const agentConfigSchema = z.object({
  /** Master URL, or several (an array, or separated by commas): the agent registers with the leader among them. */
  master: z
    .union([z.string(), z.array(z.string()).min(1)])
    .superRefine((m, ctx) => {
      const problem = masterSpecProblem(m);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .default('http://127.0.0.1:5050'),
  /**
   * How the agent speaks to the master: "channel", one WebSocket for calls and events (falling back to
   * POST where the master serves none); "http", an event stream and a POST per call (as through a proxy
   * that passes no WebSocket).
   */
  transport: z.enum(['channel', 'http']).default('channel'),
  /** Security file to take this agent's credential from (a principal in acls.agents); or principal+secret. */
  credentials: z.string().optional(),
  principal: z.string().optional(),
  secret: z.string().optional(),
  /** Where the agent's own API listens (logs, live containers, health, metrics). */
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(5051),
  /** Name/address other hosts and clients reach this agent by (its underlay IP in a lab). */
  advertiseHost: z.string().optional(),
  workDir: z.string().default('/var/lib/corral/agent'),
  /** Override detected resources, Mesos text form; `cpus(role):2` makes a static reservation. */
  resources: z.string().optional(),
  /** Attributes, e.g. "rack:r1;zone:a". */
  attributes: z.string().default(''),
  containerizers: z
    .array(z.enum(['MESOS', 'DOCKER']))
    .min(1)
    .default(['MESOS']),
  docker: z.object({ socket: z.string().default('/var/run/docker.sock') }).default({ socket: '/var/run/docker.sock' }),
  /**
   * Native containerizer settings (plugins/isolator mesosContainerizerConfigSchema): runDir,
   * cgroupRoot, netnsPrefix… — give several agents on one host distinct values.
   */
  mesos: z.record(z.string(), z.unknown()).default({}),
  /** CNI network configurations (conflists) a task's network name refers to. */
  cniConfDir: z.string().default('/etc/cni/net.d'),
  /**
   * Also serve the agent API on this unix socket (mode 0600): node-local peers in
   * other network namespaces, e.g. the CNI daemon's leak reconciler, reach it there.
   */
  apiSocket: z.string().optional(),
  /** Volume plugin daemon socket; external volumes of native tasks are attached through it. */
  volumeSocket: z.string().default('/run/docker/plugins/corral.sock'),
  tasks: z
    .object({
      /** SIGTERM→SIGKILL grace when neither the task nor the kill says. */
      defaultGracePeriodMs: z.number().int().min(0).max(3_600_000).default(3000),
      pidsLimit: z.number().int().min(1).max(1_000_000).default(4096),
    })
    .default({ defaultGracePeriodMs: 3000, pidsLimit: 4096 }),
  /**
   * Who a native task runs as when neither its command nor its framework names a user
   * (TaskInfo.command.user, then FrameworkInfo.user): an unprivileged account of this host.
   */
  taskUser: z
    .string()
    .regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+)?$/, 'a user name or uid[:gid]')
    .max(64)
    .default('nobody'),
  /**
   * Whether a task may run as root (uid 0). The master decides who may launch as which user (its
   * run_tasks ACL) and the agent runs what it is sent; false makes this host refuse root tasks
   * whatever the master allowed.
   */
  allowRootTasks: z.boolean().default(true),
  logs: z
    .object({
      maxBytes: z
        .number()
        .int()
        .min(1024)
        .default(10 * 1024 * 1024),
      maxFiles: z.number().int().min(1).max(100).default(5),
    })
    .default({ maxBytes: 10 * 1024 * 1024, maxFiles: 5 }),
  gc: z
    .object({
      /** Sandboxes of ended tasks are removed after this long… */
      maxAgeMs: z
        .number()
        .int()
        .min(0)
        .default(24 * 3_600_000),
      /** …or sooner, oldest first, while the work dir's disk is fuller than this fraction. */
      diskHighWatermark: z.number().min(0).max(1).default(0.9),
      intervalMs: z.number().int().min(100).default(60_000),
    })
    .default({ maxAgeMs: 24 * 3_600_000, diskHighWatermark: 0.9, intervalMs: 60_000 }),
  /** Agent API without authentication (local use only). */
  noAuth: z.boolean().default(false),
  /**
   * HTTPS for the agent API and mutual TLS towards the master: `tls: { ca, cert, key }` (the certificate
   * is for server and client use; its CN is the agent's principal at the master). Plain HTTP only with
   * `insecure: true` (--insecure).
   */
  ...tlsConfigFields,
  /** The agent API server's timeouts and caps (docs/security.md, "Server limits"). */
  limits: httpLimitsSchema({ maxConnections: 1024, maxConnectionsPerClient: 256, maxStreams: 256, maxStreamsPerClient: 32 }),
  log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), file: z.string().optional() }).default({ level: 'info' }),
});

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;
