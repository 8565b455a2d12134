/**
 * TLS of a `corral up` instance: a cluster CA of its own under the work
 * directory (ca/ca.crt, ca/ca.key 0600) and, in tls/, the CA certificate and a
 * certificate per daemon (provision/src/tls.ts). The CLI trusts tls/ca.crt
 * (CORRAL_TLS_CA; found by itself for the default instance).
 */
import { readFileSync } from 'node:fs';
import { ensureClusterCa, issueNodeCertificates, nodeConfigSchema } from '../../provision/src/index.js';
import type { ClientTls } from '../../contracts/client/tls.js';
import { upNodeConfig, type UpPlan } from './plan.js';
import { ensureSecurityFile, planSecretsOf } from './security.js';

/** Make the CA (once) and the daemons' certificates (when missing, expiring, or for other names). */
export async function ensureUpCertificates(plan: UpPlan): Promise<string[]> {
  if (!plan.tls) return [];
  const ca = await ensureClusterCa(plan.tls.caDir, `corral ${plan.name} cluster CA`);
  // The agent's certificate carries its principal at the master (mutual TLS checks the two agree).
  const agent = planSecretsOf(ensureSecurityFile(plan.paths.security)).agents.principal;
  return issueNodeCertificates(ca, nodeConfigSchema.parse(upNodeConfig(plan)), { agent });
}

/** What the instance's clients (the CLI, the supervisor, the demo) trust. */
export function upClientTls(plan: UpPlan): ClientTls | undefined {
  return plan.tls ? { ca: readFileSync(plan.tls.caFile, 'utf8') } : undefined;
}
