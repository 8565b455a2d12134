/**
 * The secure configuration of a cluster, made on the operator's machine (the
 * one that keeps the cluster CA), and the bundle each host receives: what the
 * namespace lab does for its machines (lab/security.ts) and `corral node
 * bundle` does for one host at a time (vagrant/, or any set of machines).
 *
 *   OPERATOR/               (0700) the operator's, never a host's
 *     ca/ca.crt, ca/ca.key  the cluster CA (key 0600)
 *     secrets/<p>.secret    one random secret per principal (0600): a host bundled
 *                           later gets the same secrets for the same principals
 *     admin.yaml            the operator credential (corral --credentials FILE)
 *     curlrc                curl's config: the CA and admin's Basic credentials,
 *                           also sent on a redirect to the leader (`curl -K`)
 *
 * A host's bundle (its node file's tls.dir and security.file):
 *  - tls/: ca.crt and a certificate and key (0600) per daemon it runs (and its
 *    etcd member's and etcd client's when it runs one); never the CA's key;
 *  - security.yaml (0600): every principal of the cluster as an scrypt hash and
 *    the ACLs, and in plain text only its own principals' secrets.
 *
 * Principals: `admin` (operators), `services` (the service framework, shared
 * by its replicas on the control nodes: one framework), `discovery-<control>`
 * (acls.view), `agent-<host>` (acls.agents; its certificate's CN), `cni-<host>`
 * (acls.store for IPAM on the master, acls.view for the BGP mesh's agent list).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { hashSecret, type SecurityConfigInput } from '../../core-scheduler/src/index.js';
import { parseInput } from '../../common/validate.js';
import { CorralError } from '../../contracts/errors.js';
import { componentsOf, nodeConfigSchema, type Component, type NodeConfigInput } from './config.js';
import { nodeFileFor } from './init.js';
import { ensureClusterCa, issueNodeCertificates } from './tls.js';
import { issueEtcdCertificates } from './etcd-tls.js';

type Credential = { principal: string; secret: string };

/** The files of an operator directory. */
export function operatorFiles(dir: string): { dir: string; caDir: string; ca: string; secrets: string; credentials: string; curlrc: string } {
  return { dir, caDir: join(dir, 'ca'), ca: join(dir, 'ca', 'ca.crt'), secrets: join(dir, 'secrets'), credentials: join(dir, 'admin.yaml'), curlrc: join(dir, 'curlrc') };
}

const writePrivate = (file: string, text: string): void => {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
};

const PRINCIPAL = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** The principals whose secrets a host holds, by the daemons it runs (see the module comment). */
export function hostPrincipals(name: string, components: readonly Component[]): string[] {
  return [
    ...(components.includes('services') ? ['services'] : []),
    ...(components.includes('discovery') ? [`discovery-${name}`] : []),
    ...(components.includes('agent') ? [`agent-${name}`] : []),
    ...(components.includes('cni') ? [`cni-${name}`] : []),
  ];
}

/** What each principal of the cluster may do (docs/security.md, "The namespace lab and vagrant"). */
export function clusterAcls(principals: readonly string[]): NonNullable<SecurityConfigInput['acls']> {
  const named = (prefix: string): string[] => principals.filter((p) => p.startsWith(prefix));
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

/** The secret of `principal`, made on first use and kept in the operator directory (0600). */
function secretOf(secretsDir: string, principal: string): string {
  if (!PRINCIPAL.test(principal)) throw new CorralError('INVALID_ARGUMENT', `"${principal}" is not a principal name (lower-case letters, digits and dashes)`);
  const file = join(secretsDir, `${principal}.secret`);
  if (existsSync(file)) {
    const secret = readFileSync(file, 'utf8').trim();
    if (secret) return secret;
  }
  // Random, 144 bits: a cheap scrypt cost below loses nothing.
  const secret = randomBytes(18).toString('base64url');
  writePrivate(file, `${secret}\n`);
  return secret;
}

/** Where a bundle keeps its parts: what `corral node init --bundle DIR` names in the node file. */
export const bundleFiles = (dir: string): { tls: string; security: string } => ({ tls: join(dir, 'tls'), security: join(dir, 'security.yaml') });

/** The principals of a host of this role, with the daemons a role runs by default. */
export function rolePrincipals(name: string, role: 'control' | 'agent'): string[] {
  return hostPrincipals(name, componentsOf(parseInput(nodeConfigSchema, { role, name, address: '127.0.0.1', dir: '/' }, `host ${name}`)));
}

/**
 * The host a bundle in `out` is for, with the node file `corral node init --bundle` would write
 * there (the same daemons, so the same certificates and principals). An agent's control address does
 * not enter its bundle: its own stands in.
 */
export function bundleHostFor(o: { role: 'control' | 'agent'; name: string; address: string; out: string; controlPlane?: Array<{ name: string; address: string }> }): BundleHost {
  const node = nodeFileFor({
    role: o.role,
    name: o.name,
    address: o.address,
    dir: o.out,
    bundle: o.out,
    ...(o.role === 'agent' ? { control: o.address } : {}),
    ...(o.controlPlane ? { controlPlane: o.controlPlane } : {}),
  });
  return { node, own: hostPrincipals(o.name, componentsOf(parseInput(nodeConfigSchema, node, `node file ${o.name}`))) };
}

/** The principals the operator directory already holds secrets for (hosts bundled before). */
function knownPrincipals(secretsDir: string): string[] {
  return readdirSync(secretsDir)
    .filter((f) => f.endsWith('.secret'))
    .map((f) => f.slice(0, -'.secret'.length));
}

/** One host to bundle: its node file (tls.dir and security.file say where its bundle goes) and its own principals. */
export interface BundleHost {
  node: NodeConfigInput;
  /** The principals whose secrets this host holds in plain text. */
  own: string[];
}

export interface BundleOptions {
  /** The CA's common name when it is made. */
  caName: string;
  /** Principals of other hosts, to be verified by these hosts' daemons (hashes only); those the operator directory knows are always added. */
  peers?: string[];
}

/**
 * Makes the operator directory (CA, secrets, admin's credential and curl
 * config) if needed, issues every given host's certificates into its own
 * tls.dir and writes its security file: every principal known to the cluster
 * as a hash, its own in plain text. The CA's key stays in the operator
 * directory. Returns the operator's credential.
 */
export async function writeHostBundles(operatorDir: string, hosts: BundleHost[], o: BundleOptions): Promise<Credential> {
  const op = operatorFiles(operatorDir);
  mkdirSync(op.caDir, { recursive: true, mode: 0o700 });
  mkdirSync(op.secrets, { recursive: true, mode: 0o700 });
  for (const d of [op.dir, op.caDir, op.secrets]) chmodSync(d, 0o700);
  const ca = await ensureClusterCa(op.caDir, o.caName);
  const principals = [...new Set(['admin', ...hosts.flatMap((h) => h.own), ...(o.peers ?? []), ...knownPrincipals(op.secrets)])];
  const secrets = new Map(principals.map((p) => [p, secretOf(op.secrets, p)]));
  // Secrets are random (144 bits): a cheap scrypt cost loses nothing and keeps a start quick.
  const hashes = new Map(principals.map((p) => [p, hashSecret(secrets.get(p)!, { N: 1024, r: 8, p: 1 })]));
  const acls = clusterAcls(principals);
  for (const h of hosts) {
    const node = parseInput(nodeConfigSchema, h.node, `node file ${h.node.name}`);
    if (node.tls) {
      await issueNodeCertificates(ca, node, h.own.some((p) => p.startsWith('agent-')) ? { agent: `agent-${node.name}` } : {}, op.caDir);
      await issueEtcdCertificates(ca, node);
    }
    if (node.security) {
      mkdirSync(dirname(node.security.file), { recursive: true, mode: 0o700 });
      const credentials = principals.map((p) => (h.own.includes(p) ? { principal: p, secret: secrets.get(p)! } : { principal: p, secret_hash: hashes.get(p)! }));
      writePrivate(node.security.file, `# the cluster's credentials for ${node.name}: its own in plain text, the others' hashes only\n${stringify({ credentials, acls })}`);
    }
  }
  const admin = { principal: 'admin', secret: secrets.get('admin')! };
  writePrivate(op.credentials, `# the cluster's operator credential (corral --credentials FILE)\n${stringify({ credentials: [admin], acls: { operators: ['admin'] } })}`);
  // curl's config syntax: quoted values, backslash escapes (the secret is base64url, nothing to escape). A standby
  // master or service framework daemon redirects to the leader on another address: the credentials follow the
  // redirect (location-trusted), which only ever leads to a cluster machine proving itself with the cluster CA.
  writePrivate(op.curlrc, `cacert = "${op.ca}"\nuser = "${admin.principal}:${admin.secret}"\nlocation-trusted\n`);
  return admin;
}
