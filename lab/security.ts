/**
 * The lab's secure configuration, made before any machine is provisioned,
 * as an operator would on the machine that keeps the cluster CA
 * (provision/src/bundle.ts, the same step `corral node bundle` takes for one
 * host):
 *
 *   DIR/operator/            (0700) the operator's, never a host's
 *     ca/ca.crt, ca/ca.key   the cluster CA (key 0600); with three control
 *                            nodes also etcd's root password (etcd-root.password)
 *     secrets/               one secret per principal (0600)
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
 */
import { join } from 'node:path';
import { hostPrincipals, operatorFiles, writeHostBundles, type BundleHost, type NodeConfigInput } from '../provision/src/index.js';

/** Where the operator's files of a lab live. */
export function labOperatorFiles(dir: string): { dir: string; caDir: string; ca: string; credentials: string; curlrc: string } {
  const op = operatorFiles(join(dir, 'operator'));
  return { dir: op.dir, caDir: op.caDir, ca: op.ca, credentials: op.credentials, curlrc: op.curlrc };
}

/** One machine of the lab, as the security set-up sees it: its node file and the principals its daemons use. */
export type LabMachine = BundleHost;

/** The principals a machine's daemons use (see provision/src/bundle.ts). */
export function machinePrincipals(node: NodeConfigInput): string[] {
  return hostPrincipals(node.name, node.components ?? []);
}

/**
 * Makes the lab's CA (kept in the operator's directory), issues every
 * machine's certificates into its own tls.dir, generates a secret per
 * principal and writes each machine's security file (hashes for all, plain
 * text for its own) and the operator's files. Returns the operator's credential.
 */
export function secureLab(dir: string, machines: LabMachine[]): Promise<{ principal: string; secret: string }> {
  return writeHostBundles(labOperatorFiles(dir).dir, machines, { caName: 'corral lab CA' });
}
