/**
 * The control plane's etcd, secured when the node has TLS (`tls` in its node
 * file): members speak TLS to clients and to each other, and accept only
 * certificates of the cluster CA on both sides (client and peer certificate
 * auth); once the cluster is up, etcd's authentication is switched on with
 * a least-privilege user per kind of corral daemon.
 *
 * Files in the node's TLS directory, beside the daemons' own:
 *  - etcd.crt / etcd.key: the member's certificate (server for clients and
 *    peers, client towards peers), naming the node's address;
 *  - etcd-client.crt / etcd-client.key: what the master presents to etcd,
 *    CN `corral-master` (also used by the set-up before authentication is on);
 *  - etcd-services.crt, etcd-discovery.crt, etcd-cni.crt (and keys): the
 *    service framework's, discovery's and the CNI daemon's, CN
 *    `corral-services`, `corral-discovery`, `corral-cni`; a node gets only
 *    those of the daemons it runs.
 * With client certificate auth etcd takes the CN for the user: no password
 * to hand out or keep. Each user's role may touch only its daemon's keys
 * (common/store/etcd-auth.ts, corralEtcdUsers).
 * etcd's `root` user, which it requires before authentication can be on, gets
 * a generated password kept beside the CA's key (etcd-root.password, 0600);
 * it is used for this set-up only.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { corralEtcdUsers, ensureRootPassword, ETCD_USERS, setupEtcdAuth, type EtcdDaemonKind } from '../../common/store/etcd-auth.js';
import { CorralError, isCorralError } from '../../contracts/errors.js';
import { issueCertificate, loadTls, writeTlsFiles, type TlsPair } from '../../common/tls/index.js';
import { componentsOf, etcdEndpoints, type NodeConfig } from './config.js';
import { CERT_DAYS, ensureClusterCa } from './tls.js';

/** The key prefix corral's daemons keep their state under in etcd (their Store namespace). */
export const ETCD_NAMESPACE = 'corral/';

const files = (dir: string, name: string) => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });

/** The member's TLS files and the CA, in the node's TLS directory. */
const etcdMemberFiles = (tlsDir: string) => ({ ca: join(tlsDir, 'ca.crt'), ...files(tlsDir, 'etcd') });
/** The name of each daemon's etcd client pair in the TLS directory (the master's keeps its first name). */
const CLIENT_FILE: Record<EtcdDaemonKind, string> = { master: 'etcd-client', services: 'etcd-services', discovery: 'etcd-discovery', cni: 'etcd-cni' };

/** What `daemon` presents to etcd (default: the master, whose certificate the set-up uses too). */
export const etcdClientFiles = (tlsDir: string, daemon: EtcdDaemonKind = 'master') => ({ ca: join(tlsDir, 'ca.crt'), ...files(tlsDir, CLIENT_FILE[daemon]) });

/** Whether the node's CNI daemon keeps its IPAM in an etcd over TLS (the cluster CA's: its endpoints are https). */
const cniOnEtcdTls = (n: NodeConfig): boolean => componentsOf(n).includes('cni') && typeof n.cni.store === 'object' && n.cni.store.etcdEndpoints.every((e) => e.startsWith('https://'));

/** The daemons of this node that connect to etcd, each with a certificate of its own: a host holds only its own daemons'. */
function etcdClientsOf(n: NodeConfig): EtcdDaemonKind[] {
  const runs = componentsOf(n);
  const registry = n.master.registry === 'etcd';
  return [
    // A member's node runs the set-up (with this certificate, before authentication is on).
    ...(runs.includes('etcd') || (registry && runs.includes('master')) ? ['master' as const] : []),
    ...(registry && runs.includes('services') ? ['services' as const] : []),
    ...(registry && runs.includes('discovery') ? ['discovery' as const] : []),
    ...(cniOnEtcdTls(n) ? ['cni' as const] : []),
  ];
}

/** The store settings that reach etcd from `daemon` on this node: TLS with its own client certificate, or nothing without TLS. */
export function etcdClientStore(n: NodeConfig, daemon: EtcdDaemonKind = 'master'): { etcdTls?: { ca: string; cert: string; key: string } } {
  return n.tls ? { etcdTls: etcdClientFiles(n.tls.dir, daemon) } : {};
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
  const clients = etcdClientsOf(n);
  if (!n.tls || (clients.length === 0 && !componentsOf(n).includes('etcd'))) return [];
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
  for (const d of clients) {
    const f = etcdClientFiles(dir, d);
    if (!needsIssuing(f.cert, ca.certPem) && readCn(f.cert) === ETCD_USERS[d]) continue;
    writeTlsFiles(dir, CLIENT_FILE[d], await issueCertificate(ca, { commonName: ETCD_USERS[d], usage: 'client', validDays: CERT_DAYS }));
    issued.push(CLIENT_FILE[d]);
  }
  return issued;
}

/**
 * Before the daemons start: with the CA at hand (tls.caDir), issue what is
 * missing or expiring; without it, check the certificates the node was handed.
 */
export async function ensureEtcdCertificates(n: NodeConfig): Promise<void> {
  const clients = etcdClientsOf(n);
  if (!n.tls || (clients.length === 0 && !componentsOf(n).includes('etcd'))) return;
  if (n.tls.caDir) {
    await issueEtcdCertificates(await ensureClusterCa(n.tls.caDir, `corral cluster CA (${n.name})`), n);
    return;
  }
  const member = componentsOf(n).includes('etcd');
  const needed = [...(member ? [['etcd member', etcdMemberFiles(n.tls.dir)] as const] : []), ...clients.map((d) => [`etcd client (${d})`, etcdClientFiles(n.tls!.dir, d)] as const)];
  for (const [what, f] of needed) {
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
 * Switch etcd's authentication on, with a user per kind of daemon (each
 * certificate-authenticated, confined to its own keys) and root (password
 * kept beside the CA key). Done by the first member holding the CA only, so
 * members coming up together never race; idempotent across node ups.
 *
 * `ifRunning`: before the daemons are (re)started, on a cluster that already
 * runs — a node brought up again, possibly after an upgrade that gave the
 * daemons users of their own — the users are made first, so a daemon never
 * starts as a user etcd does not know yet. An etcd not up (a first start)
 * is no error then: the call after the start does it.
 */
export async function secureEtcd(n: NodeConfig, opts: { ifRunning?: boolean } = {}): Promise<{ enabled: boolean } | undefined> {
  if (!n.tls?.caDir || !componentsOf(n).includes('etcd') || n.etcd.members[0]?.name !== n.name) return undefined;
  const rootPassword = ensureRootPassword(join(n.tls.caDir, 'etcd-root.password'));
  const users = corralEtcdUsers(ETCD_NAMESPACE);
  // The set-up connects with the master's certificate: before auth is on, it may do anything; after, root's password is used.
  const conn = { endpoints: etcdEndpoints(n), tls: etcdClientFiles(n.tls.dir), dialTimeoutMs: opts.ifRunning ? 3_000 : 10_000 };
  if (!opts.ifRunning) return setupEtcdAuth(conn, { rootPassword, users });
  // This node's member not running: a first start (or one after node down), nothing to prepare and no time to lose
  // (the other members' daemons wait for this member).
  if (!existsSync(conn.tls.cert) || !(await memberAnswers(n))) return undefined;
  try {
    return await setupEtcdAuth(conn, { rootPassword, users });
  } catch (err) {
    if (isCorralError(err, 'UNAVAILABLE')) return undefined;
    throw err;
  }
}

/** Whether this node's etcd member answers its plain /health at all (healthy or not). */
async function memberAnswers(n: NodeConfig): Promise<boolean> {
  try {
    await fetch(`${etcdHealthBase(n)}/health`, { signal: AbortSignal.timeout(2_000) });
    return true;
  } catch {
    return false;
  }
}

function readCn(file: string): string | undefined {
  try {
    return /(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(readFileSync(file)).subject)?.[1];
  } catch {
    return undefined;
  }
}
