/**
 * The lab's secure configuration, made before any machine is provisioned,
 * as an operator would on the machine that keeps the cluster CA:
 *
 *   DIR/operator/            (0700) the operator's, never a host's
 *     ca/ca.crt, ca/ca.key   the cluster CA (key 0600); with three control
 *                            nodes also etcd's root password (etcd-root.password)
 *     admin.yaml             the operator credential (corral --credentials FILE)
 *     curlrc                 curl's config for the operator: the CA and admin's
 *                            Basic credentials, also sent on a redirect to the
 *                            leader (`curl -K`), so tests and people
 *                            call the lab over HTTPS without a secret on a command line
 *
 * Each machine gets only what it needs, in its own directory (files 0600):
 *  - tls/: ca.crt and a certificate and key per daemon it runs (and its
 *    etcd member's and etcd client's with three control nodes);
 *  - security.yaml: every principal's scrypt hash and the ACLs, and in plain
 *    text only its own principals' secrets (what its daemons present).
 *
 * Principals: `admin` (operators), `services` (the service framework, shared
 * by its replicas on the control nodes: one framework), `discovery-<control>`
 * (acls.view), `agent-<host>` (acls.agents; its certificate's CN), `cni-<host>`
 * (acls.store for IPAM on the master, acls.view for the BGP mesh's agent list).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { hashSecret, type SecurityConfigInput } from '../core-scheduler/src/index.js';
import { parseInput } from '../common/validate.js';
import { ensureClusterCa, issueEtcdCertificates, issueNodeCertificates, nodeConfigSchema, type NodeConfigInput } from '../provision/src/index.js';

type Credential = { principal: string; secret: string };

/** Where the operator's files of a lab live. */
export function labOperatorFiles(dir: string): { dir: string; caDir: string; ca: string; credentials: string; curlrc: string } {
  const op = join(dir, 'operator');
  return { dir: op, caDir: join(op, 'ca'), ca: join(op, 'ca', 'ca.crt'), credentials: join(op, 'admin.yaml'), curlrc: join(op, 'curlrc') };
}

const writePrivate = (file: string, text: string): void => {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
};

/** One machine of the lab, as the security set-up sees it: its node file and the principals its daemons use. */
export interface LabMachine {
  node: NodeConfigInput;
  /** The principals whose secrets this machine holds in plain text. */
  own: string[];
}

/** The principals a machine's daemons use (see the module comment). */
export function machinePrincipals(node: NodeConfigInput): string[] {
  const runs = node.components ?? [];
  return [
    ...(runs.includes('services') ? ['services'] : []),
    ...(runs.includes('discovery') ? [`discovery-${node.name}`] : []),
    ...(runs.includes('agent') ? [`agent-${node.name}`] : []),
    ...(runs.includes('cni') ? [`cni-${node.name}`] : []),
  ];
}

function labAcls(machines: LabMachine[]): NonNullable<SecurityConfigInput['acls']> {
  const all = machines.flatMap((m) => m.own);
  const named = (prefix: string): string[] => all.filter((p) => p.startsWith(prefix));
  return {
    register_frameworks: [{ principals: ['services', 'admin'], roles: 'ANY' }],
    // Frameworks may run tasks as any user but root; the agent's default user needs no rule.
    run_tasks: [{ principals: ['services', 'admin'], users: 'ANY' }],
    operators: ['admin'],
    view: [...named('discovery-'), ...named('cni-')],
    agents: named('agent-'),
    // IPAM on the master's Store: the CNI daemons (and the agents, the default's other half).
    store: ['admin', ...named('cni-'), ...named('agent-')],
  };
}

/**
 * Makes the lab's CA (kept in the operator's directory), issues every
 * machine's certificates into its own tls.dir, generates a secret per
 * principal and writes each machine's security file (hashes for all, plain
 * text for its own) and the operator's files. Returns the operator's credential.
 */
export async function secureLab(dir: string, machines: LabMachine[]): Promise<Credential> {
  const op = labOperatorFiles(dir);
  mkdirSync(op.caDir, { recursive: true, mode: 0o700 });
  chmodSync(op.dir, 0o700);
  const ca = await ensureClusterCa(op.caDir, 'corral lab CA');
  const principals = ['admin', ...new Set(machines.flatMap((m) => m.own))];
  const secrets = new Map(principals.map((p) => [p, randomBytes(18).toString('base64url')]));
  // Secrets are random (144 bits): a cheap scrypt cost loses nothing and keeps a lab's start quick.
  const hashes = new Map(principals.map((p) => [p, hashSecret(secrets.get(p)!, { N: 1024, r: 8, p: 1 })]));
  const acls = labAcls(machines);
  for (const m of machines) {
    const node = parseInput(nodeConfigSchema, m.node, `lab node file ${m.node.name}`);
    if (node.tls) {
      await issueNodeCertificates(ca, node, m.own.some((p) => p.startsWith('agent-')) ? { agent: `agent-${node.name}` } : {});
      await issueEtcdCertificates(ca, node);
    }
    if (node.security) {
      const credentials = principals.map((p) => (m.own.includes(p) ? { principal: p, secret: secrets.get(p)! } : { principal: p, secret_hash: hashes.get(p)! }));
      mkdirSync(node.dir, { recursive: true, mode: 0o700 });
      writePrivate(node.security.file, `# the lab's credentials for ${node.name}: its own in plain text, the others' hashes only\n${stringify({ credentials, acls })}`);
    }
  }
  const admin = { principal: 'admin', secret: secrets.get('admin')! };
  writePrivate(op.credentials, `# the lab's operator credential (corral --credentials FILE)\n${stringify({ credentials: [admin], acls: { operators: ['admin'] } })}`);
  // curl's config syntax: quoted values, backslash escapes (the secret is base64url, nothing to escape). A standby
  // master or service framework daemon redirects to the leader on another address: the credentials follow the
  // redirect (location-trusted), which only ever leads to a lab machine proving itself with the lab CA.
  writePrivate(op.curlrc, `cacert = "${op.ca}"\nuser = "${admin.principal}:${admin.secret}"\nlocation-trusted\n`);
  return admin;
}
