/**
 * The node file: what one machine of a corral cluster runs and how it finds
 * the others. One file per machine, written by whoever provisions it (the
 * namespace lab per host namespace, vagrant/provision.sh per VM, an operator
 * by hand), then `corral node up --config FILE` starts its daemons.
 *
 *   role: control   master (+ its Store), services daemon, discovery; optionally a lab Ceph
 *   role: agent     CNI node daemon (+ exabgp), volume driver (rbd), agent (native containerizer)
 *
 * Every path a daemon writes (work dirs, sockets, cgroup root, netns names)
 * derives from `dir`, `name` and `agent.*`, so several nodes can share one
 * kernel (the namespace lab) without meeting.
 */
import { z } from '../../common/validate.js';
import { isIp } from '../../common/netkit/ipv4.js';
import { masterSpecProblem } from '../../contracts/client/masters.js';

const ip = z.string().refine(isIp, 'an IPv4 address');
const absPath = z
  .string()
  .startsWith('/', 'must be an absolute path')
  .refine((p) => !/[\0\n]/.test(p), 'no NUL or newline');
const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'an IPv4 CIDR');
const port = z.number().int().min(1).max(65535);
const nodeName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, 'a lower-case DNS label of at most 32 characters');
// Pool names go into Ceph caps ("profile rbd pool=NAME"): nothing that could widen them.
const cephPool = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'letters, digits, _ . - (max 63)');

export const COMPONENTS = ['ceph', 'etcd', 'master', 'services', 'discovery', 'cni', 'volumes', 'agent'] as const;
export type Component = (typeof COMPONENTS)[number];

const ROLE_COMPONENTS: Record<'control' | 'agent', Component[]> = {
  control: ['master', 'services', 'discovery'],
  agent: ['cni', 'volumes', 'agent'],
};

export const nodeConfigSchema = z
  .strictObject({
    role: z.enum(['control', 'agent']),
    /** This machine's name: agent attribute `host`, volume host id, CNI node name. */
    name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, 'a lower-case DNS label of at most 32 characters'),
    /** This machine's address on the cluster network: daemons listen and advertise here. */
    address: ip,
    /** State root: every daemon's directory, config and log lives under it. */
    dir: absPath,
    /** Sockets and run-time state (default DIR/run). */
    runDir: absPath.optional(),
    /**
     * Authentication: the security file (credentials and ACLs) the master,
     * the service framework and the agent check callers against, and whose
     * principals the clients among them use (`corral node init` names one by
     * default; a host's comes in its bundle, `corral node bundle`). Unset: no
     * authentication (`corral node init --insecure`: a lab on a private network).
     */
    security: z.strictObject({ file: absPath }).optional(),
    /**
     * TLS: the directory holding this node's certificates — ca.crt, and <daemon>.crt with its
     * <daemon>.key (0600) for each daemon it runs (provision/src/tls.ts issues them; the CA's key
     * is never there). Every API is then HTTPS, and agents use mutual TLS towards the master.
     * Unset: plain HTTP, each daemon started with `insecure: true` (`corral node init --insecure`).
     * `caDir`: where the cluster CA lives (ca.crt, ca.key 0600) on the node that holds it — the
     * control node made by `corral node init` without a bundle: `corral node up` makes the CA there if
     * absent and issues this node's certificates from it. A node without it must be given its
     * certificates (its bundle).
     */
    tls: z.strictObject({ dir: absPath, caDir: absPath.optional() }).optional(),
    /** Which daemons to run; default by role (a lab's CNI-only hosts run just `cni`). `ceph` is only for control nodes of labs. */
    components: z.array(z.enum(COMPONENTS)).min(1).optional(),
    /** Where the control node's services are (agents use it; a control node defaults it to its own address). */
    control: z
      .strictObject({
        address: ip.optional(),
        /** Every control node's address, with replicated masters: clients take the list and follow the leader (default: `address`). */
        addresses: z.array(ip).min(1).optional(),
        masterPort: port.default(5050),
        servicesPort: port.default(5052),
        dnsPort: port.default(8600),
        discoveryHttpPort: port.default(8500),
      })
      .prefault({}),
    /**
     * The control plane's etcd cluster (component `etcd`: this node runs the
     * member named after it). `members` lists every member (the control nodes);
     * the master keeps its registry there with `master.registry: etcd`.
     */
    etcd: z
      .strictObject({
        members: z.array(z.strictObject({ name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/), address: ip })).default([]),
        clientPort: port.default(2379),
        peerPort: port.default(2380),
        /** With TLS: where a member serves /health and /metrics in plain HTTP (its client port wants a client certificate). */
        metricsPort: port.default(2381),
        /** Distinguishes this cluster's members from another's on the same network. */
        token: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/)
          .default('corral'),
      })
      .prefault({}),
    master: z
      .strictObject({
        /** Where the registry lives: the master's embedded Store, or the etcd cluster (`etcd.members`). */
        registry: z.enum(['embedded', 'etcd']).default('embedded'),
        /** Several masters, one leading (elected in etcd); needs `registry: etcd`. */
        ha: z.boolean().default(false),
        /** Agent-loss detection: heartbeats, missed heartbeats before "disconnected", then the unreachable timeout. */
        heartbeatIntervalMs: z.number().int().min(50).default(5000),
        maxMissedHeartbeats: z.number().int().min(1).default(3),
        unreachableTimeoutMs: z.number().int().min(0).default(10_000),
        allocationIntervalMs: z.number().int().min(10).default(1000),
      })
      .prefault({}),
    services: z
      .strictObject({
        /** A TASK_UNREACHABLE instance is relaunched elsewhere after this long. */
        replaceAfterSeconds: z.number().min(0).default(60),
        refuseSeconds: z.number().min(0).default(5),
        idleRefuseSeconds: z.number().min(0).default(120),
        reconcileSeconds: z.number().min(1).default(60),
      })
      .prefault({}),
    discovery: z
      .strictObject({
        domain: z.string().default('corral'),
        /** DNS worker processes (default 0: one process, as a lab machine has few cores and many daemons; `auto`: one per core). */
        dnsWorkers: z.union([z.literal('auto'), z.number().int().min(0).max(64)]).default(0),
        /**
         * Consul-compatible ACLs on the discovery API (on for provisioned nodes): `deny` refuses what no
         * token grants; a management token is written to <dir>/discovery/acl-bootstrap-token (0600) at node up.
         */
        acl: z
          .strictObject({
            enabled: z.boolean().default(true),
            defaultPolicy: z.enum(['allow', 'deny']).default('deny'),
          })
          .prefault({}),
      })
      .prefault({}),
    /** Ceph for rbd volumes: a control node of a lab may bootstrap one; agents point at its client files. */
    ceph: z
      .strictObject({
        /** Control, component `ceph`: start a one-mon one-OSD memstore cluster bound to `address`. */
        bootstrap: z
          .strictObject({
            monPort: port.default(3300),
            memstoreMiB: z.number().int().min(64).max(65536).default(1024),
            pools: z.array(cephPool).default(['corral']),
            /**
             * The hosts whose volume drivers use this Ceph: each gets its own client
             * (client.corral-volumes-<host>, `profile rbd` on `pools` only) and its own keyring, written
             * with the client conf into `dir` (default PUBLISHDIR/<host>, else DIR/ceph/clients/<host>).
             * A client no longer listed is revoked at the next node up.
             */
            clients: z.array(z.strictObject({ host: nodeName, dir: absPath.optional() })).default([]),
            /** Also copy the client conf here, and each client's files into a directory named after its host. */
            publishDir: absPath.optional(),
          })
          .optional(),
        confFile: absPath.optional(),
        keyring: absPath.optional(),
        /** The volume driver's Ceph client (default client.corral-volumes-<name>, the node's own least-privilege client). */
        clientName: z
          .string()
          .regex(/^client\.[a-zA-Z0-9_.-]+$/, 'client.<id>')
          .optional(),
        pool: cephPool.default('corral'),
      })
      .prefault({}),
    cni: z
      .strictObject({
        /** The CNI network name apps join (`network:` in an app). */
        network: z.string().default('corral'),
        pools: z
          .array(z.strictObject({ name: z.string(), cidr, blockSize: z.number().int().min(20).max(32).default(26) }))
          .min(1)
          .default([{ name: 'default', cidr: '100.96.0.0/16', blockSize: 26 }]),
        /** IPAM store: the master's Store (`master`), etcd, or the node's own (`embedded`: one node shares its pool with nobody). */
        store: z.union([z.literal('master'), z.literal('embedded'), z.strictObject({ etcdEndpoints: z.array(z.string().url()).min(1), namespace: z.string().default('') })]).default('master'),
        /** Run the node daemon inside this named network namespace (its veths and routes live there, not in the machine's). */
        netns: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/)
          .optional(),
        /** Announce container routes over BGP (off for a node alone). */
        bgp: z.boolean().default(true),
        asn: z.number().int().min(1).default(64512),
        holdTime: z.number().int().min(3).default(9),
        /** Peers: the master's agent list (full mesh, the default) or these route reflectors. */
        routeReflectors: z.array(ip).default([]),
        /** The master URL the mesh is read from when it is not this cluster's control node (a CNI-only lab). */
        meshMaster: z
          .string()
          .refine((u) => masterSpecProblem(u) === undefined, { message: 'a master URL, or several separated by commas' })
          .optional(),
        meshPollMs: z.number().int().min(100).default(1000),
        reconcileIntervalMs: z.number().int().min(0).default(10_000),
        /** The daemon's state dir (default DIR/cni/state). */
        stateDir: absPath.optional(),
      })
      .prefault({}),
    volumes: z
      .strictObject({
        /** The plugin socket (default RUNDIR/volumes.sock; Docker looks in /run/docker/plugins/NAME.sock). */
        socket: absPath.optional(),
        /** Volume data (default DIR/volumes/data). */
        dataDir: absPath.optional(),
        attach: z.enum(['auto', 'krbd', 'rbd-fuse']).default('auto'),
        timeoutSeconds: z.number().int().min(1).default(10),
      })
      .prefault({}),
    agent: z
      .strictObject({
        port: port.default(5051),
        /** The agent API on a unix socket too: daemons in another network namespace (the CNI daemon's leak reconciler) reach it there. */
        apiSocket: absPath.optional(),
        /** Mesos text form; default: detected. */
        resources: z.string().optional(),
        /** Extra attributes; `host:<name>` is always added. */
        attributes: z.string().default(''),
        /** Parent of this agent's container cgroups (default corral-<name>). */
        cgroupRoot: z
          .string()
          .regex(/^[A-Za-z0-9_.-]+$/)
          .optional(),
        /** Container netns file names (default corral-<name>-). */
        netnsPrefix: z
          .string()
          .regex(/^[A-Za-z0-9_.-]*$/)
          .max(40)
          .optional(),
        /** More paths whose mounts tasks must not pin (a lab masks its whole directory: every host's volumes). */
        maskedPaths: z.array(absPath).default([]),
        /** Hand an external volume's mount point to the task's user when no other task uses it (Mesos's --docker_volume_chown; off by default). */
        externalVolumeChown: z.boolean().default(false),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
        /** One file per daemon here (its structured log and output together) instead of DIR/<daemon>/<daemon>.log and .out. */
        dir: absPath.optional(),
      })
      .prefault({}),
  })
  .superRefine((n, ctx) => {
    const components = n.components ?? ROLE_COMPONENTS[n.role];
    if (n.master.ha && n.master.registry !== 'etcd') ctx.addIssue({ code: 'custom', path: ['master', 'ha'], message: 'replicated masters keep their registry in etcd: set master.registry to etcd' });
    if ((n.master.registry === 'etcd' || components.includes('etcd')) && n.etcd.members.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['etcd', 'members'], message: 'list the etcd members (the control nodes: name and address)' });
    }
    if (components.includes('etcd') && n.etcd.members.length > 0 && !n.etcd.members.some((m) => m.name === n.name && m.address === n.address)) {
      ctx.addIssue({ code: 'custom', path: ['etcd', 'members'], message: `this node (${n.name} at ${n.address}) runs an etcd member but is not among etcd.members` });
    }
  });

export type NodeConfig = z.output<typeof nodeConfigSchema>;
export type NodeConfigInput = z.input<typeof nodeConfigSchema>;

/** The etcd cluster's client URLs, as every daemon that uses it names them. */
export const etcdEndpoints = (c: NodeConfig): string[] => c.etcd.members.map((m) => `${c.tls ? 'https' : 'http'}://${m.address}:${c.etcd.clientPort}`);

export function componentsOf(c: NodeConfig): Component[] {
  return c.components ?? ROLE_COMPONENTS[c.role];
}
