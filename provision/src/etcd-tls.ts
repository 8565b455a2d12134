/**
 * The control plane's etcd, secured when the node has TLS (`tls` in its node
 * file): members speak TLS to clients and to each other, and accept only
 * certificates of the cluster CA on both sides (client and peer certificate
 * auth); once the cluster is up, etcd's authentication is switched on with
 * corral's least-privilege user.
 *
 * Files in the node's TLS directory, beside the daemons' own:
 *  - etcd.crt / etcd.key: the member's certificate (server for clients and
 *    peers, client towards peers), naming the node's address;
 *  - etcd-client.crt / etcd-client.key: what corral's daemons present to
 *    etcd, CN `corral-master`. With client certificate auth etcd takes the
 *    CN for the user: no password to hand out or keep. That user's role may
 *    read and write under corral's namespace (`corral/`) only.
 * etcd's `root` user, which it requires before authentication can be on, gets
 * a generated password kept beside the CA's key (etcd-root.password, 0600);
 * it is used for this set-up only.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { corralMasterUser, ensureRootPassword, setupEtcdAuth } from '../../common/store/etcd-auth.js';
import { issueCertificate, loadTls, writeTlsFiles, type TlsPair } from '../../common/tls/index.js';
import { CorralError } from '../../contracts/errors.js';
import { componentsOf, etcdEndpoints, type NodeConfig } from './config.js';
import { CERT_DAYS, ensureClusterCa } from './tls.js';

/** The key prefix corral's daemons keep their state under in etcd (their Store namespace). */
export const ETCD_NAMESPACE = 'corral/';
/** The etcd user corral's control-plane daemons act as (their client certificate's CN). */
const ETCD_CLIENT_USER = 'corral-master';

const files = (dir: string, name: string) => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });

/** The member's TLS files and the CA, in the node's TLS directory. */
const etcdMemberFiles = (tlsDir: string) => ({ ca: join(tlsDir, 'ca.crt'), ...files(tlsDir, 'etcd') });
/** What corral's daemons present to etcd. */
export const etcdClientFiles = (tlsDir: string) => ({ ca: join(tlsDir, 'ca.crt'), ...files(tlsDir, 'etcd-client') });

/** Whether this node talks to the control plane's etcd (runs a member, or keeps the registry there). */
const usesEtcd = (n: NodeConfig): boolean => componentsOf(n).includes('etcd') || n.master.registry === 'etcd';

/** The store settings that reach the control plane's etcd from this node: TLS with the client certificate, or nothing without TLS. */
export function etcdClientStore(n: NodeConfig): { etcdTls?: { ca: string; cert: string; key: string } } {
  return n.tls ? { etcdTls: etcdClientFiles(n.tls.dir) } : {};
}

/**
 * etcd's own configuration for the member's TLS (the keys of its config file):
 * client and peer traffic over TLS, certificates of the cluster CA required on
 * both; /health and /metrics on a plain URL of their own for readiness checks.
 */
export function etcdMemberTlsConfig(n: NodeConfig): Record<string, unknown> {
  if (!n.tls) return {};
  const f = etcdMemberFiles(n.tls.dir);
  const transport = { 'cert-file': f.cert, 'key-file': f.key, 'trusted-ca-file': f.ca, 'client-cert-auth': true };
  return {
    'client-transport-security': transport,
    'peer-transport-security': transport,
    'listen-metrics-urls': etcdHealthBase(n),
  };
}

/** Where a member answers /health: the client URL without TLS, its plain metrics URL with TLS (the client URL wants a certificate). */
export function etcdHealthBase(n: NodeConfig): string {
  return n.tls ? `http://${n.address}:${n.etcd.metricsPort}` : `http://${n.address}:${n.etcd.clientPort}`;
}

function needsIssuing(file: string, caPem: string, ip?: string): boolean {
  if (!existsSync(file)) return true;
  try {
    const c = new X509Certificate(readFileSync(file, 'utf8'));
    const from = Date.parse(c.validFrom);
    const to = Date.parse(c.validTo);
    if (Date.now() > to - (to - from) / 10 || !c.checkIssued(new X509Certificate(caPem))) return true;
    return ip !== undefined && !(c.subjectAltName ?? '').includes(`IP Address:${ip}`);
  } catch {
    return true;
  }
}

/**
 * Issue the node's etcd certificates from `ca` into its TLS directory when
 * missing or expiring: the member's (if it runs one) and corral's client
 * certificate (if it uses etcd). Returns what was issued. Also what
 * `corral node certs` hands another node.
 */
export async function issueEtcdCertificates(ca: TlsPair, n: NodeConfig): Promise<string[]> {
  if (!n.tls || !usesEtcd(n)) return [];
  const dir = n.tls.dir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The CA's certificate verifies etcd (and etcd its clients); never its key.
  writeFileSync(join(dir, 'ca.crt'), ca.certPem, { mode: 0o644 });
  const issued: string[] = [];
  if (componentsOf(n).includes('etcd') && needsIssuing(etcdMemberFiles(dir).cert, ca.certPem, n.address)) {
    const pair = await issueCertificate(ca, {
      commonName: `etcd-${n.name}`,
      dnsNames: ['localhost', n.name.toLowerCase()],
      ipAddresses: [...new Set([n.address, '127.0.0.1'])],
      usage: 'both',
      validDays: CERT_DAYS,
    });
    writeTlsFiles(dir, 'etcd', pair);
    issued.push('etcd');
  }
  if (needsIssuing(etcdClientFiles(dir).cert, ca.certPem)) {
    writeTlsFiles(dir, 'etcd-client', await issueCertificate(ca, { commonName: ETCD_CLIENT_USER, usage: 'client', validDays: CERT_DAYS }));
    issued.push('etcd-client');
  }
  return issued;
}

/**
 * Before the daemons start: with the CA at hand (tls.caDir), issue what is
 * missing or expiring; without it, check the certificates the node was handed.
 */
export async function ensureEtcdCertificates(n: NodeConfig): Promise<void> {
  if (!n.tls || !usesEtcd(n)) return;
  if (n.tls.caDir) {
    await issueEtcdCertificates(await ensureClusterCa(n.tls.caDir, `corral cluster CA (${n.name})`), n);
    return;
  }
  const member = componentsOf(n).includes('etcd');
  for (const [what, f] of [...(member ? [['etcd member', etcdMemberFiles(n.tls.dir)] as const] : []), ['etcd client', etcdClientFiles(n.tls.dir)] as const]) {
    try {
      loadTls(f, `node ${n.name}: ${what} tls`);
    } catch (err) {
      throw new CorralError(
        'FAILED_PRECONDITION',
        `${(err as Error).message} (this node has no CA key: its etcd certificates must be issued on the node holding the cluster CA — corral node certs — and copied here, keys 0600)`,
      );
    }
  }
}

/**
 * Once the cluster is up: switch etcd's authentication on, with corral's user
 * (certificate-authenticated, confined to `corral/`) and root (password kept
 * beside the CA key). Done by the first member holding the CA only, so
 * members coming up together never race; idempotent across node ups.
 */
export async function secureEtcd(n: NodeConfig): Promise<{ enabled: boolean } | undefined> {
  if (!n.tls?.caDir || !componentsOf(n).includes('etcd') || n.etcd.members[0]?.name !== n.name) return undefined;
  const rootPassword = ensureRootPassword(join(n.tls.caDir, 'etcd-root.password'));
  // The set-up connects with the client certificate: before auth is on, it may do anything; after, root's password is used.
  return setupEtcdAuth({ endpoints: etcdEndpoints(n), tls: etcdClientFiles(n.tls.dir), dialTimeoutMs: 10_000 }, { rootPassword, users: [corralMasterUser(ETCD_NAMESPACE)] });
}
