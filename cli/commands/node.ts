/**
 * corral node — provision this machine as a control node or an agent node of
 * a cluster from one node file (provision/): the namespace lab runs it once
 * per host namespace, vagrant/provision.sh once per VM.
 */
import { resolve, sep } from 'node:path';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { loadConfig } from '../../common/config.js';
import { CorralError } from '../../contracts/errors.js';
import { nodeConfigSchema, type NodeConfig } from '../../provision/src/index.js';
import { planNode } from '../../provision/src/index.js';
import { nodeFileFor, initNode, type NodeInitOptions } from '../../provision/src/index.js';
import { intOption } from '../parse.js';
import { nodeDown, nodeStatus, nodeUp } from '../../provision/src/index.js';
import { ensureClusterCa, issueEtcdCertificates, issueNodeCertificates } from '../../provision/src/index.js';
import { bundleHostFor, operatorFiles, rolePrincipals, writeHostBundles } from '../../provision/src/index.js';
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

/** `agent1=agent,control=control` → the cluster's other hosts and their roles. */
function parsePeers(text: string): Array<{ name: string; role: 'control' | 'agent' }> {
  return text.split(',').map((part) => {
    const [name, role] = part.split('=').map((x) => x.trim());
    if (!name || (role !== 'control' && role !== 'agent')) throw new CorralError('INVALID_ARGUMENT', `--peers: "${part}" is not name=control or name=agent`);
    return { name, role };
  });
}

const load = (file: string): NodeConfig => loadConfig(nodeConfigSchema, { file, envPrefix: 'CORRAL_NODE_' });

/** A node with authentication needs its security file before its daemons can be planned: say where it comes from. */
function requireSecurityFile(config: NodeConfig): NodeConfig {
  if (config.security && !existsSync(config.security.file))
    throw new CorralError(
      'FAILED_PRECONDITION',
      `node ${config.name}: its security file ${config.security.file} does not exist: make this host's bundle on the operator's machine (corral node bundle --operator-dir DIR --role ${config.role} --name ${config.name} --address ${config.address} --out BUNDLE), copy BUNDLE to this host over an authenticated channel and write the node file with corral node init --bundle BUNDLE; or, for plain HTTP without authentication, corral node init --insecure`,
    );
  return config;
}

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
    .option('--ceph-clients <hosts>', 'control with --ceph: the agents (names, comma-separated) each given its own least-privilege Ceph client, files in DIR/ceph/clients/<host>')
    .option('--ceph-conf <file>', "agent: the cluster's Ceph client configuration (rbd volumes)")
    .option('--ceph-keyring <file>', 'agent: its own keyring (client.corral-volumes-<name>)')
    .option('--pool <cidr>', 'container address pool (default 100.96.0.0/16)')
    .option('--agent-timeout-ms <ms>', "control: a silent agent's tasks are unreachable after 3 heartbeats + this (default 5000)", intOption('--agent-timeout-ms', 0, 3_600_000))
    .option('--heartbeat-ms <ms>', 'control: agent heartbeat period (default 1000)', intOption('--heartbeat-ms', 50, 600_000))
    .option('--hold-time <s>', 'agent: BGP hold time (default 9)', intOption('--hold-time', 3, 65535))
    .option('--resources <text>', 'agent: resources to offer (default: detected)')
    .option('--attributes <text>', 'agent: extra attributes, e.g. "rack:r1"')
    .option('--insecure', 'plain HTTP without authentication (a lab on a private network, debugging); default: TLS on every API and authentication')
    .addOption(new Option('--tls', 'accepted for older scripts: TLS is the default').hideHelp())
    .option('--tls-dir <dir>', "this node's certificate directory (default DIR/tls)")
    .option('--ca-dir <dir>', 'the cluster CA directory on this node (default DIR/ca on a control node; agents have none)')
    .option('--no-ca-dir', 'no CA on this node: its certificates are handed to it (a control node provisioned from an operator bundle)')
    .option('--security <file>', "this node's security file: every principal hashed, its own secrets in plain text (default DIR/security.yaml)")
    .option('--bundle <dir>', "the operator's bundle for this host (corral node bundle --out), copied here: certificates in DIR/tls, DIR/security.yaml, no CA on the node")
    .option('--control-plane <list>', 'control: every control node as name=address, comma-separated (3 for replicated masters: each runs an etcd member and a master)')
    .action((o: Record<string, unknown>) => {
      if (o.role !== 'control' && o.role !== 'agent') throw new CorralError('INVALID_ARGUMENT', '--role must be control or agent');
      if (o.tls && o.insecure) throw new CorralError('INVALID_ARGUMENT', '--tls contradicts --insecure (TLS is the default: leave both out for a secure node)');
      // commander: `--ca-dir <dir>` gives a string, `--no-ca-dir` false, neither undefined.
      const tls =
        o.tlsDir !== undefined || o.caDir !== undefined
          ? { ...(o.tlsDir ? { dir: resolve(o.tlsDir as string) } : {}), ...(o.caDir !== undefined ? { caDir: o.caDir === false ? (false as const) : resolve(o.caDir as string) } : {}) }
          : undefined;
      const opts: NodeInitOptions = {
        role: o.role,
        name: o.name as string,
        address: o.address as string,
        control: o.control as string | undefined,
        dir: o.dir as string | undefined,
        runDir: o.runDir as string | undefined,
        ceph: !!o.ceph,
        ...(o.cephClients
          ? {
              cephClients: (o.cephClients as string)
                .split(',')
                .map((h) => h.trim())
                .filter(Boolean),
            }
          : {}),
        cephConf: o.cephConf as string | undefined,
        cephKeyring: o.cephKeyring as string | undefined,
        pool: o.pool as string | undefined,
        agentTimeoutMs: o.agentTimeoutMs as number | undefined,
        heartbeatMs: o.heartbeatMs as number | undefined,
        holdTime: o.holdTime as number | undefined,
        resources: o.resources as string | undefined,
        attributes: o.attributes as string | undefined,
        ...(o.controlPlane ? { controlPlane: parseControlPlane(o.controlPlane as string) } : {}),
        ...(tls ? { tls } : {}),
        ...(o.security ? { security: resolve(o.security as string) } : {}),
        ...(o.bundle ? { bundle: resolve(o.bundle as string) } : {}),
        ...(o.insecure ? { insecure: true } : {}),
      };
      initNode(opts); // validate before printing
      process.stdout.write(JSON.stringify(nodeFileFor(opts), null, 2) + '\n');
    });

  node
    .command('bundle')
    .description(
      "on the operator's machine (it keeps the cluster CA): write one host's bundle — its certificates and a security file with every principal hashed and its own secrets in plain text — to hand over to that host alone (then `corral node init --bundle DIR` there)",
    )
    .requiredOption('--operator-dir <dir>', "the operator's directory: the cluster CA, one secret per principal, admin.yaml and curlrc (made on first use, 0700; never copied to a host)")
    .requiredOption('--role <role>', 'control or agent')
    .requiredOption('--name <name>', "the host's name (as its node file's)")
    .requiredOption('--address <ip>', "the host's address on the cluster network (in its certificates)")
    .requiredOption('--out <dir>', 'where to write the bundle (0700): tls/ (ca.crt, a pair per daemon, keys 0600) and security.yaml (0600)')
    .option('--peers <list>', "the cluster's other hosts as name=role, comma-separated: their principals' hashes go into this host's security file (hosts bundled before are always included)")
    .option('--control-plane <list>', "control: every control node as name=address, comma-separated (this host's etcd member's certificates)")
    .action(async (o: { operatorDir: string; role: string; name: string; address: string; out: string; peers?: string; controlPlane?: string }) => {
      if (o.role !== 'control' && o.role !== 'agent') throw new CorralError('INVALID_ARGUMENT', '--role must be control or agent');
      const out = resolve(o.out);
      const operatorDir = resolve(o.operatorDir);
      const within = (a: string, b: string): boolean => a === b || a.startsWith(b + sep);
      if (within(out, operatorDir) || within(operatorDir, out))
        throw new CorralError('INVALID_ARGUMENT', `--out ${out} and --operator-dir ${operatorDir} overlap: a host's bundle must never hold the CA's key or other hosts' secrets`);
      mkdirSync(out, { recursive: true, mode: 0o700 });
      chmodSync(out, 0o700);
      const plane = o.controlPlane ? parseControlPlane(o.controlPlane) : undefined;
      const host = bundleHostFor({ role: o.role, name: o.name, address: o.address, out, ...(plane ? { controlPlane: plane } : {}) });
      const peers = (o.peers ? parsePeers(o.peers) : []).filter((p) => p.name !== o.name).flatMap((p) => rolePrincipals(p.name, p.role));
      const admin = await writeHostBundles(operatorDir, [host], { caName: 'corral cluster CA', peers });
      const op = operatorFiles(operatorDir);
      progress(
        `bundle for ${o.role} node ${o.name} in ${out} (its own principals: ${host.own.join(', ')}); operator files in ${op.dir}: CA ${op.ca}, credential ${op.credentials} (${admin.principal}), curl config ${op.curlrc}`,
      );
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
      const config = requireSecurityFile(load(o.config));
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
      const rows = await nodeStatus(requireSecurityFile(load(o.config)));
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
