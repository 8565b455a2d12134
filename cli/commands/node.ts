/**
 * corral node — provision this machine as a control node or an agent node of
 * a cluster from one node file (provision/): the namespace lab runs it once
 * per host namespace, vagrant/provision.sh once per VM.
 */
import type { Command } from 'commander';
import { loadConfig } from '../../common/config.js';
import { CorralError } from '../../contracts/errors.js';
import { nodeConfigSchema, type NodeConfig } from '../../provision/src/index.js';
import { planNode } from '../../provision/src/index.js';
import { nodeFileFor, initNode, type NodeInitOptions } from '../../provision/src/index.js';
import { intOption } from '../parse.js';
import { nodeDown, nodeStatus, nodeUp } from '../../provision/src/index.js';
import { ensureClusterCa, issueEtcdCertificates, issueNodeCertificates } from '../../provision/src/index.js';
import { globals } from '../context.js';
import { output, progress } from '../output.js';

/** `c1=198.18.0.1,c2=198.18.0.2,…` → the control plane's members. */
function parseControlPlane(text: string): Array<{ name: string; address: string }> {
  return text.split(',').map((part) => {
    const [name, address] = part.split('=');
    if (!name || !address) throw new CorralError('INVALID_ARGUMENT', `--control-plane: "${part}" is not name=address`);
    return { name: name.trim(), address: address.trim() };
  });
}

const load = (file: string): NodeConfig => loadConfig(nodeConfigSchema, { file, envPrefix: 'CORRAL_NODE_' });

export function registerNode(program: Command): void {
  const node = program.command('node').description('provision this machine: the daemons of a control or agent node, from a node file');

  node
    .command('init')
    .description('print a node file (JSON) for this machine: write it to /etc/corral/node.json, then `corral node up --config` it')
    .requiredOption('--role <role>', 'control or agent')
    .requiredOption('--name <name>', "this machine's name (lower-case DNS label)")
    .requiredOption('--address <ip>', "this machine's address on the cluster network")
    .option('--control <ip>', "the control node's address (agents)")
    .option('--dir <dir>', 'state root (default /var/lib/corral/node)')
    .option('--run-dir <dir>', 'sockets (default /run/corral/node)')
    .option('--ceph', 'control: bootstrap a one-mon, one-OSD memstore Ceph for rbd volumes (a lab, not production)')
    .option('--ceph-conf <file>', "agent: the cluster's Ceph client configuration (rbd volumes)")
    .option('--ceph-keyring <file>', 'agent: its keyring')
    .option('--pool <cidr>', 'container address pool (default 100.96.0.0/16)')
    .option('--agent-timeout-ms <ms>', "control: a silent agent's tasks are unreachable after 3 heartbeats + this (default 5000)", intOption('--agent-timeout-ms', 0, 3_600_000))
    .option('--heartbeat-ms <ms>', 'control: agent heartbeat period (default 1000)', intOption('--heartbeat-ms', 50, 600_000))
    .option('--hold-time <s>', 'agent: BGP hold time (default 9)', intOption('--hold-time', 3, 65535))
    .option('--resources <text>', 'agent: resources to offer (default: detected)')
    .option('--attributes <text>', 'agent: extra attributes, e.g. "rack:r1"')
    .option('--tls', 'TLS on every API: certificates in DIR/tls; a control node keeps the cluster CA in DIR/ca and issues them at node up')
    .option('--tls-dir <dir>', "with --tls: this node's certificate directory (default DIR/tls)")
    .option('--ca-dir <dir>', 'with --tls: the cluster CA directory on this node (default DIR/ca on a control node; agents have none)')
    .option('--control-plane <list>', 'control: every control node as name=address, comma-separated (3 for replicated masters: each runs an etcd member and a master)')
    .action((o: Record<string, unknown>) => {
      if (o.role !== 'control' && o.role !== 'agent') throw new Error('--role must be control or agent');
      const opts: NodeInitOptions = {
        role: o.role,
        name: o.name as string,
        address: o.address as string,
        control: o.control as string | undefined,
        dir: o.dir as string | undefined,
        runDir: o.runDir as string | undefined,
        ceph: !!o.ceph,
        cephConf: o.cephConf as string | undefined,
        cephKeyring: o.cephKeyring as string | undefined,
        pool: o.pool as string | undefined,
        agentTimeoutMs: o.agentTimeoutMs as number | undefined,
        heartbeatMs: o.heartbeatMs as number | undefined,
        holdTime: o.holdTime as number | undefined,
        resources: o.resources as string | undefined,
        attributes: o.attributes as string | undefined,
        ...(o.controlPlane ? { controlPlane: parseControlPlane(o.controlPlane as string) } : {}),
        ...(o.tls ? { tls: { ...(o.tlsDir ? { dir: o.tlsDir as string } : {}), ...(o.caDir ? { caDir: o.caDir as string } : {}) } } : {}),
      };
      initNode(opts); // validate before printing
      process.stdout.write(JSON.stringify(nodeFileFor(opts), null, 2) + '\n');
    });

  node
    .command('certs')
    .description("on the node holding the cluster CA: issue another node's certificates (from its node file) into a directory to hand over to that node alone")
    .requiredOption('--config <file>', "the other node's node file")
    .requiredOption('--ca-dir <dir>', 'the cluster CA directory (ca.crt, ca.key)')
    .requiredOption('--out <dir>', "where to write ca.crt and its daemons' pairs (keys 0600); copy them to its tls.dir over an authenticated channel")
    .option('--agent-principal <name>', "the agent's principal at the master (its certificate's CN)")
    .action(async (o: { config: string; caDir: string; out: string; agentPrincipal?: string }) => {
      const config = load(o.config);
      const ca = await ensureClusterCa(o.caDir, 'corral cluster CA');
      const target = { ...config, tls: { dir: o.out } };
      const issued = [...(await issueNodeCertificates(ca, target, o.agentPrincipal ? { agent: o.agentPrincipal } : {})), ...(await issueEtcdCertificates(ca, target))];
      progress(`issued ${issued.length ? issued.join(', ') : 'nothing (all current)'} for node ${config.name} in ${o.out}`);
    });

  node
    .command('plan')
    .description('print what `up` would run: every daemon with its command line and configuration (JSON)')
    .requiredOption('--config <file>', 'node file (YAML or JSON)')
    .action((o: { config: string }) => {
      const config = load(o.config);
      // Secrets are never printed: the plan shows where each comes from.
      const hidden = (principal: string) => ({ principal, secret: `<secret of ${principal} in ${config.security?.file}>` });
      const secrets = config.security ? { admin: hidden('admin'), frameworks: hidden('frameworks'), agents: hidden('agents') } : undefined;
      process.stdout.write(JSON.stringify(planNode(config, secrets), null, 2) + '\n');
    });

  node
    .command('up')
    .description("start the node's daemons (detached) and wait until each is ready; re-running starts only what is missing")
    .requiredOption('--config <file>', 'node file (YAML or JSON)')
    .action(async (o: { config: string }, cmd: Command) => {
      const config = load(o.config);
      progress(`provisioning ${config.role} node ${config.name} (${config.address}) in ${config.dir}`);
      await nodeUp(config);
      const rows = await nodeStatus(config);
      output(
        globals(cmd),
        rows,
        [
          { header: 'DAEMON', value: (r) => r.name },
          { header: 'PID', value: (r) => r.pid },
          { header: 'READY', value: (r) => (r.ready === undefined ? '-' : r.ready ? 'yes' : 'no') },
        ],
        rows,
      );
    });

  node
    .command('status')
    .description("the node's recorded daemons, whether each runs and answers")
    .requiredOption('--config <file>', 'node file (YAML or JSON)')
    .action(async (o: { config: string }, cmd: Command) => {
      const rows = await nodeStatus(load(o.config));
      output(
        globals(cmd),
        rows,
        [
          { header: 'DAEMON', value: (r) => r.name },
          { header: 'PID', value: (r) => r.pid },
          { header: 'RUNNING', value: (r) => (r.running ? 'yes' : 'no') },
          { header: 'READY', value: (r) => (r.ready === undefined ? '-' : r.ready ? 'yes' : 'no') },
        ],
        rows,
      );
    });

  node
    .command('down')
    .description("stop the node's daemons (tasks keep running, as with any agent stop); --purge also kills its tasks and removes its volumes' mounts and cgroups")
    .requiredOption('--config <file>', 'node file (YAML or JSON)')
    .option('--purge', 'kill everything at once and wipe tasks, mounts, container namespaces and cgroups')
    .action(async (o: { config: string; purge?: boolean }) => {
      const config = load(o.config);
      await nodeDown(config.dir, { purge: !!o.purge });
      progress(`node ${config.name} down`);
    });
}
