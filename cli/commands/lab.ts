/**
 * corral lab — a multi-host lab on this machine: hosts as network namespaces
 * on an underlay bridge, each provisioned by `corral node up` inside its
 * namespace. Default: the CNI node daemon and exabgp per host, etcd and a
 * master with simulated agents in a services namespace. `--full`: the whole
 * stack (agent, rbd volume driver, CNI per host; master, services,
 * discovery and Ceph on the control node). Optionally a bird2 route
 * reflector, and test containers wired through the real plugin.
 */
import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { configureLogging } from '../../common/log.js';
import { labDown, labNetns, labStatus, labUp, loadLab, addContainer, killHost } from '../../lab/index.js';
import { inNamespace } from '../../common/sys/process.js';
import { runLabServices } from '../../lab/index.js';
import { globals } from '../context.js';
import { output, progress } from '../output.js';
import { intOption } from '../parse.js';

const DEFAULT_DIR = '/var/lib/corral/lab';

export function registerLab(program: Command): void {
  const lab = program.command('lab').description('multi-host routed-network lab in network namespaces');

  lab
    .command('up')
    .description('build the lab: underlay, services, N hosts with node daemons, containers')
    .option('--hosts <n>', 'number of hosts', intOption('--hosts', 1, 200), 3)
    .option('--containers <n>', 'test containers per host', intOption('--containers', 0, 100), 1)
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .option('--prefix <name>', 'namespace name prefix', 'corral-lab')
    .option('--route-reflector', 'peer through a bird2 route reflector instead of a full mesh')
    .option('--full', 'the whole stack: a control node (master, services, discovery, Ceph) and per host an agent, the rbd volume driver and CNI')
    .option('--hold-time <s>', 'BGP hold time (default 9; 3 with --full)', intOption('--hold-time', 3, 65535))
    .option('--agent-timeout <ms>', 'with --full: how long a silent agent stays "disconnected" before its tasks are unreachable (default 1000)', intOption('--agent-timeout', 0, 3_600_000))
    .option('--heartbeat <ms>', 'with --full: agent heartbeat period; 2 missed = disconnected (default 500)', intOption('--heartbeat', 50, 600_000))
    .option('--controls <n>', 'with --full: control nodes, 1 or 3 (three: replicated masters on a three-member etcd)', intOption('--controls', 1, 3), 1)
    .option('--insecure', 'plain HTTP, no authentication and an open etcd, for debugging (by default every daemon and etcd use TLS and authentication)')
    .action(
      async (
        o: {
          hosts: number;
          containers: number;
          dir: string;
          prefix: string;
          routeReflector?: boolean;
          full?: boolean;
          holdTime?: number;
          agentTimeout?: number;
          heartbeat?: number;
          controls: number;
          insecure?: boolean;
        },
        cmd: Command,
      ) => {
        progress(`building a ${o.hosts}-host ${o.full ? 'full ' : ''}lab in ${o.dir}`);
        const holdTime = o.holdTime ?? (o.full ? 3 : undefined);
        const state = await labUp({
          prefix: o.prefix,
          hosts: o.hosts,
          dir: o.dir,
          containers: o.containers,
          routeReflector: !!o.routeReflector,
          full: !!o.full,
          controls: o.controls,
          insecure: !!o.insecure,
          ...(holdTime !== undefined ? { holdTime } : {}),
          ...(o.agentTimeout !== undefined ? { unreachableMs: o.agentTimeout } : {}),
          ...(o.heartbeat !== undefined ? { heartbeatMs: o.heartbeat } : {}),
        });
        if (o.full)
          progress(`master ${state.plan.masterUrls.join(',')}, services ${state.plan.servicesUrl}, DNS ${state.plan.dns.address}:${state.plan.dns.port}, discovery ${state.plan.discoveryUrl}`);
        else progress(`master ${state.plan.masterUrls.join(',')} (simulated agents), IPAM in etcd ${state.plan.etcdUrl}`);
        // A secure lab (the default) is reached with its CA and the operator's credential file; neither secret goes on the command line.
        const op = state.plan.operator;
        const secure = op ? ` --tls-ca ${op.ca} --credentials ${op.credentials}` : '';
        progress(`e.g. corral lab exec h1 -- corral --master ${state.plan.masterUrls.join(',')}${secure} agents ls`);
        if (op) progress(`curl with the CA and the operator's credentials: curl -K ${op.curlrc} -H 'Content-Type: application/json' -d '{"type":"GET_AGENTS"}' ${state.plan.masterUrls[0]}/api/v1`);
        output(
          globals(cmd),
          state.containers,
          [
            { header: 'CONTAINER', value: (c) => c.id },
            { header: 'HOST', value: (c) => c.host },
            { header: 'IP', value: (c) => c.ip },
            { header: 'NETNS', value: (c) => c.netns },
          ],
          state,
        );
      },
    );

  lab
    .command('down')
    .description('stop everything the lab started and remove it')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .action(async (o: { dir: string }) => {
      await labDown(o.dir);
      progress('lab removed');
    });

  lab
    .command('status')
    .description('hosts, daemons, BGP sessions and learned routes')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .action(async (o: { dir: string }, cmd: Command) => {
      const rows = await labStatus(o.dir);
      output(globals(cmd), rows, [
        { header: 'HOST', value: (r) => r.host },
        { header: 'IP', value: (r) => r.ip },
        { header: 'DAEMON', value: (r) => (r.daemon ? 'up' : 'down') },
        { header: 'BGP', value: (r) => `${r.sessionsUp}/${r.peers}` },
        { header: 'ROUTES', value: (r) => r.routes },
        { header: 'CONTAINERS', value: (r) => r.containers },
      ]);
    });

  lab
    .command('add-container <host> <id>')
    .description('start a test container on a lab host (CNI ADD through the installed plugin)')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .action(async (host: string, id: string, o: { dir: string }, cmd: Command) => {
      if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(id)) throw new Error('container id: lower-case letters, digits and dashes, at most 16');
      const c = await addContainer(loadLab(o.dir), host, id);
      output(
        globals(cmd),
        [c],
        [
          { header: 'CONTAINER', value: (x) => x.id },
          { header: 'IP', value: (x) => x.ip },
          { header: 'NETNS', value: (x) => x.netns },
        ],
        c,
      );
    });

  lab
    .command('kill-host <host>')
    .description('kill a host as a power cut would: SIGKILL its daemons, helpers and tasks, and delete its underlay link')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .action(async (host: string, o: { dir: string }) => {
      await killHost(loadLab(o.dir), host);
      progress(`${host} killed`);
    });

  lab
    .command('exec <name> <command...>')
    .description('run a command inside a lab host or container namespace (e.g. corral lab exec h1c1 -- ping -c1 100.96.0.1)')
    .option('--dir <dir>', 'lab directory', DEFAULT_DIR)
    .action((name: string, command: string[], o: { dir: string }) => {
      const netns = labNetns(loadLab(o.dir), name);
      const argv = inNamespace(netns, command);
      const r = spawnSync(argv[0]!, argv.slice(1), { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    });

  lab
    .command('services', { hidden: true })
    .description('(internal) the lab master with one simulated agent per host')
    .requiredOption('--listen <ip>', 'address to listen on')
    .requiredOption('--port <n>', 'port', intOption('--port', 1, 65535))
    .requiredOption('--dir <dir>', 'state directory')
    .requiredOption('--agents <ips>', 'comma-separated agent hostnames (underlay addresses)')
    .action(async (o: { listen: string; port: number; dir: string; agents: string }) => {
      configureLogging({ level: 'info' });
      const s = await runLabServices({ host: o.listen, port: o.port, dir: o.dir, agents: o.agents.split(',').filter(Boolean) });
      const stop = async (): Promise<void> => {
        await s.close();
        process.exit(0);
      };
      process.once('SIGTERM', () => void stop());
      process.once('SIGINT', () => void stop());
    });
}
