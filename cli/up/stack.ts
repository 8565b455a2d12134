/**
 * The real single-node stack of `corral up`: one configuration file and one
 * command line per daemon, in start order, each with the probe that says it
 * is ready. The daemons are the ordinary `corral <daemon> --config FILE`
 * processes; nothing here is a special build of them.
 *
 *   master         registry on the embedded Store, APIs on 127.0.0.1
 *   volume-driver  local backend, socket <runDir>/plugins/corral.sock
 *   cni            node daemon inside the node netns (its veths, /32 routes
 *                  and block blackholes live there, never in the root
 *                  namespace); block claims in an embedded Store
 *   agent          native MESOS containerizer, CNI conf dir, volume socket
 *   discovery      DNS and the Consul API on 127.0.0.1, following the master
 *   services       the service framework (`corral app …`)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { basicAuthHeader } from '../../contracts/client/auth-header.js';
import { VolumeClient } from '../../plugins/volume-driver/src/index.js';
import { daemonRequest } from '../../plugins/cni-calico-like/src/index.js';
import { conflist } from '../../plugins/cni-calico-like/src/index.js';
import { NETWORK, type UpPlan } from './plan.js';

export type Credential = { principal: string; secret: string };
export interface StackCredentials {
  admin: Credential;
  frameworks: Credential;
  agents: Credential;
}

export interface Component {
  name: 'master' | 'volume-driver' | 'cni' | 'agent' | 'discovery' | 'services';
  /** What it is, for people. */
  what: string;
  /** Arguments to the corral CLI. */
  args: string[];
  /** Run inside this network namespace (nsenter --net, never `ip netns exec`, which hides /sys/fs/cgroup). */
  netns?: string;
  /** Resolves with a short description once the daemon serves; throws while it does not. */
  ready(): Promise<string>;
}

async function getJson(url: string, auth?: Credential): Promise<Record<string, unknown>> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000), ...(auth ? { headers: { authorization: basicAuthHeader(auth.principal, auth.secret) } } : {}) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

function writeConfig(plan: UpPlan, name: string, config: Record<string, unknown>): string {
  mkdirSync(plan.paths.config, { recursive: true, mode: 0o700 });
  const file = join(plan.paths.config, `${name}.yaml`);
  writeFileSync(file, `# written by corral up; rewritten at every start\n${stringify(config)}`, { mode: 0o600 });
  return file;
}

/** Writes every daemon's configuration (and the CNI network) and returns the components in start order. */
export function buildStack(plan: UpPlan, cred: StackCredentials): Component[] {
  const p = plan.paths;
  const log = { level: 'info' };
  mkdirSync(p.cniConfDir, { recursive: true });
  // The network apps name (`network: corral`); the agent's CNI runtime finds the `corral` shim in corral's build dir.
  writeFileSync(join(p.cniConfDir, `10-${NETWORK}.conflist`), JSON.stringify(conflist({ network: NETWORK, socket: p.cniSocket }), null, 2) + '\n');

  const master = writeConfig(plan, 'master', { host: '127.0.0.1', port: plan.ports.master, workDir: p.master, credentials: p.security, log });
  const volumes = writeConfig(plan, 'volume-driver', {
    socket: p.volumeSocket,
    dataDir: p.volumes,
    defaultBackend: 'local',
    rbd: { enabled: false },
    // A task's volume reference whose unmount was lost is released once the agent no longer runs the task.
    reconcile: { liveContainers: { url: 'http://agent/api/v1/containers', socketPath: p.agentSocket } },
    log,
  });
  const cni = writeConfig(plan, 'cni', {
    node: hostname(),
    socket: p.cniSocket,
    stateDir: join(p.cniState, 'state'),
    // Blocks are claimed in a Store of the node's own: one node shares its pool with nobody, and from inside
    // the node namespace the master's 127.0.0.1 is out of reach (a cluster uses etcd or the master's Store).
    store: { backend: 'embedded', path: join(p.cniState, 'cluster.db') },
    pools: [{ name: 'default', cidr: plan.pool.cidr, blockSize: plan.pool.blockSize }],
    // Leaked addresses are reclaimed against the agent's live containers, over its unix socket (TCP 127.0.0.1 is
    // the root namespace's), as well as against the containers' namespaces.
    reconcile: { sources: [{ type: 'netns' }, { type: 'http', url: 'http://agent/api/v1/containers', socketPath: p.agentSocket }] },
    log,
  });
  const agent = writeConfig(plan, 'agent', {
    master: plan.urls.master,
    credentials: p.security,
    host: '127.0.0.1',
    port: plan.ports.agent,
    apiSocket: p.agentSocket,
    workDir: p.agent,
    ...(plan.agentResources ? { resources: plan.agentResources } : {}),
    containerizers: ['MESOS'],
    mesos: {
      runDir: p.containerizerRun,
      cgroupRoot: plan.cgroupRoot,
      netnsPrefix: plan.netns.taskPrefix,
      // Tasks without an image see the host's mounts: keep them from pinning namespaces and other volumes.
      maskedPaths: ['/run/netns', p.volumes],
    },
    cniConfDir: p.cniConfDir,
    volumeSocket: p.volumeSocket,
    log,
  });
  const discovery = writeConfig(plan, 'discovery', {
    workDir: p.discovery,
    master: { url: plan.urls.master, ...cred.admin },
    dns: { host: '127.0.0.1', port: plan.ports.dns },
    http: { host: '127.0.0.1', port: plan.ports.discovery },
    log,
  });
  const services = writeConfig(plan, 'services', {
    host: '127.0.0.1',
    port: plan.ports.services,
    workDir: p.services,
    credentials: p.security,
    master: { url: plan.urls.master, ...cred.frameworks },
    log,
  });

  return [
    {
      name: 'master',
      what: `master on ${plan.urls.master}`,
      args: ['master', '--config', master],
      ready: async () => {
        await getJson(`${plan.urls.master}/health`);
        return plan.urls.master;
      },
    },
    {
      name: 'volume-driver',
      what: `volume plugin (local backend) on ${p.volumeSocket}`,
      args: ['volume-driver', '--config', volumes],
      ready: async () => {
        const s = await new VolumeClient(p.volumeSocket).status();
        return `backend ${s.defaultBackend}, data in ${p.volumes}`;
      },
    },
    {
      name: 'cni',
      what: `CNI node daemon in ${plan.hostNetwork ? 'the host network namespace' : `netns ${plan.netns.node}`}`,
      args: ['cni', 'daemon', '--config', cni],
      ...(plan.hostNetwork ? {} : { netns: plan.netns.nodePath }),
      ready: async () => {
        await daemonRequest(p.cniSocket, 'GET', '/v1/status', undefined, 2000);
        return `pool ${plan.pool.cidr} (/${plan.pool.blockSize} blocks), socket ${p.cniSocket}`;
      },
    },
    {
      name: 'agent',
      what: `agent on ${plan.urls.agent}`,
      args: ['agent', '--config', agent],
      ready: async () => {
        const h = await getJson(`${plan.urls.agent}/health`);
        if (h.connected !== true) throw new Error('agent not registered with the master yet');
        return `agent ${String(h.agent_id)} registered`;
      },
    },
    {
      name: 'discovery',
      what: `discovery: DNS on 127.0.0.1:${plan.ports.dns}, Consul API on ${plan.urls.discovery}`,
      args: ['discovery', '--config', discovery],
      ready: async () => {
        const s = await getJson(`${plan.urls.discovery}/v1/corral/status`);
        if (!(s.master as { connected?: boolean } | null)?.connected) throw new Error('discovery not following the master yet');
        return `zone ${String(s.domain)}`;
      },
    },
    {
      name: 'services',
      what: `service framework on ${plan.urls.services}`,
      args: ['services', '--config', services],
      ready: async () => {
        const h = await getJson(`${plan.urls.services}/health`);
        if (h.connected !== true) throw new Error('service framework not subscribed yet');
        return 'subscribed to the master';
      },
    },
  ];
}
