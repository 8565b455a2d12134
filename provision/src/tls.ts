/**
 * The certificates of a node: one per daemon, issued by the cluster CA, in the
 * node's TLS directory (`tls.dir` of its node file) with keys 0600. The CA's key
 * stays where the CA was made (`corral node init` on the control node, or
 * `corral up`'s state directory); a node only ever holds the CA certificate and
 * its own daemons' pairs.
 *
 * Every certificate names the node's address (and localhost) in its SANs. The
 * daemons that are clients of the master (agent, services, discovery, CNI
 * daemon) get certificates for both uses; the agent's CN is its principal at
 * the master, which the master's agent API checks (mutual TLS).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import {
  createClusterCa,
  createRevocationList,
  issueCertificate,
  loadTls,
  revokedIn,
  writeTlsFiles,
  type CertUsage,
  type RevocationReason,
  type RevokedCertificate,
  type TlsPair,
} from '../../common/tls/index.js';
import { CorralError } from '../../contracts/errors.js';
import { componentsOf, type NodeConfig } from './config.js';

export type TlsDaemon = 'master' | 'services' | 'discovery' | 'agent' | 'cni';

const USAGE: Record<TlsDaemon, CertUsage> = { master: 'server', services: 'both', discovery: 'both', agent: 'both', cni: 'both' };

/** Days a daemon's certificate is valid; re-issued by node up / corral up when less than a tenth is left. */
export const CERT_DAYS = 365;
export const CA_DAYS = 3650;

/** The CA's revocation list in a CA or node TLS directory (corral security revoke writes it). */
export const REVOCATION_LIST = 'ca.crl';

/** The files of `daemon` in a node's TLS directory, with the CA's revocation list when the node holds one. */
export function nodeTlsFiles(dir: string, daemon: TlsDaemon): { ca: string; cert: string; key: string; crl?: string } {
  const crl = join(dir, REVOCATION_LIST);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, `${daemon}.crt`), key: join(dir, `${daemon}.key`), ...(existsSync(crl) && { crl }) };
}

/** The cluster CA in `caDir` (ca.crt, ca.key 0600), made on first use. */
export async function ensureClusterCa(caDir: string, commonName: string): Promise<TlsPair> {
  const cert = join(caDir, 'ca.crt');
  const key = join(caDir, 'ca.key');
  if (existsSync(cert) && existsSync(key)) return { certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
  const ca = await createClusterCa({ commonName, validDays: CA_DAYS });
  writeTlsFiles(caDir, 'ca', ca);
  return ca;
}

/** Whether the certificate file is missing, expires within a tenth of its life, or names other hosts than `names`. */
function needsIssuing(file: string, caPem: string, names: string[]): boolean {
  if (!existsSync(file)) return true;
  try {
    const c = new X509Certificate(readFileSync(file));
    const from = Date.parse(c.validFrom);
    const to = Date.parse(c.validTo);
    if (Date.now() > to - (to - from) / 10) return true;
    if (!c.checkIssued(new X509Certificate(caPem))) return true;
    const san = c.subjectAltName ?? '';
    return !names.every((n) => san.includes(`IP Address:${n}`));
  } catch {
    return true;
  }
}

/**
 * Issue what the node's daemons need into `n.tls.dir`: ca.crt and a pair per
 * daemon it runs (kept while valid for the same names). `principals.agent`:
 * the agent's principal at the master (its certificate's CN).
 */
export async function issueNodeCertificates(ca: TlsPair, n: NodeConfig, principals: { agent?: string } = {}, caDir?: string): Promise<string[]> {
  if (!n.tls) return [];
  const dir = n.tls.dir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Only the CA's certificate belongs on a node, never its key; its revocation list too, when there is one.
  writeFileSync(join(dir, 'ca.crt'), ca.certPem, { mode: 0o644 });
  if (caDir && existsSync(join(caDir, REVOCATION_LIST))) copyFileSync(join(caDir, REVOCATION_LIST), join(dir, REVOCATION_LIST));
  const ipAddresses = [...new Set([n.address, '127.0.0.1'])];
  const dnsNames = ['localhost', n.name.toLowerCase()];
  const issued: string[] = [];
  const daemons = componentsOf(n).filter((c): c is TlsDaemon => c in USAGE);
  for (const d of daemons) {
    const cn = d === 'agent' ? (principals.agent ?? `agent-${n.name}`) : `${d}-${n.name}`;
    const files = nodeTlsFiles(dir, d);
    if (!needsIssuing(files.cert, ca.certPem, ipAddresses) && readCn(files.cert) === cn && existsSync(files.key)) continue;
    writeTlsFiles(dir, d, await issueCertificate(ca, { commonName: cn, dnsNames, ipAddresses, usage: USAGE[d], validDays: CERT_DAYS }));
    issued.push(d);
  }
  return issued;
}

/**
 * Before a node's daemons start: with the CA at hand (tls.caDir), issue what is
 * missing or expiring; without it, check the certificates the node was given
 * (every daemon's pair present, valid and of the CA), with errors naming the file.
 */
export async function ensureNodeCertificates(n: NodeConfig, agentPrincipal?: string): Promise<void> {
  if (!n.tls) return;
  if (n.tls.caDir) {
    await issueNodeCertificates(await ensureClusterCa(n.tls.caDir, `corral cluster CA (${n.name})`), n, agentPrincipal ? { agent: agentPrincipal } : {}, n.tls.caDir);
    return;
  }
  for (const d of componentsOf(n).filter((c): c is TlsDaemon => c in USAGE)) {
    const f = nodeTlsFiles(n.tls.dir, d);
    try {
      loadTls(f, `node ${n.name}: ${d} tls`);
    } catch (err) {
      throw new CorralError(
        'FAILED_PRECONDITION',
        `${(err as Error).message} (this node has no CA key: its certificates must be issued on the node holding the cluster CA and copied here, keys 0600)`,
      );
    }
  }
}

function readCn(file: string): string | undefined {
  try {
    return /(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(readFileSync(file)).subject)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Add certificates to the CA's revocation list (`caDir/ca.crl`), made anew
 * and signed by the CA; certificates already on it keep their date and
 * reason. Returns every entry of the new list. Daemons refuse the listed
 * certificates once the list is in their node's tls directory and they have
 * restarted (docs/security.md, "Revoking a certificate").
 */
export async function revokeCertificates(caDir: string, o: { certs?: string[]; serials?: string[]; reason: RevocationReason; validDays: number; now?: Date }): Promise<RevokedCertificate[]> {
  const certFile = join(caDir, 'ca.crt');
  const keyFile = join(caDir, 'ca.key');
  if (!existsSync(keyFile)) throw new CorralError('INVALID_ARGUMENT', `${caDir} holds no CA key (ca.key): revoke on the machine that keeps the cluster CA`);
  const ca: TlsPair = { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
  const caCert = new X509Certificate(ca.certPem);
  const serials: string[] = [...(o.serials ?? []).map((s) => s.replace(/:/g, '').toLowerCase())];
  for (const file of o.certs ?? []) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(readFileSync(file));
    } catch (err) {
      throw new CorralError('INVALID_ARGUMENT', `--cert ${file}: not a readable PEM certificate (${(err as Error).message})`);
    }
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) throw new CorralError('INVALID_ARGUMENT', `--cert ${file}: not issued by the CA in ${caDir}; its list cannot revoke it`);
    serials.push(cert.serialNumber.toLowerCase());
  }
  if (serials.length === 0) throw new CorralError('INVALID_ARGUMENT', 'nothing to revoke: give --cert FILE or --serial HEX');
  const listFile = join(caDir, REVOCATION_LIST);
  const entries = existsSync(listFile) ? revokedIn(readFileSync(listFile, 'utf8')) : [];
  const known = new Set(entries.map((e) => e.serial.replace(/^0+/, '')));
  const at = o.now ?? new Date();
  for (const serial of serials) {
    if (known.has(serial.replace(/^0+/, ''))) continue;
    known.add(serial.replace(/^0+/, ''));
    entries.push({ serial, revokedAt: at, reason: o.reason });
  }
  const pem = await createRevocationList(ca, entries, o.validDays);
  // Written beside and renamed: a daemon starting meanwhile reads the old list or the new one, never half of one.
  const tmp = `${listFile}.${process.pid}.tmp`;
  writeFileSync(tmp, pem, { mode: 0o644 });
  renameSync(tmp, listFile);
  return entries;
}
