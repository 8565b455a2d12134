/**
 * Certificates for a TLS etcd in tests, made with corral's own CA code
 * (common/tls): the cluster CA, etcd's certificate (server and peer: both
 * usages, for 127.0.0.1), client certificates by CN (etcd takes the CN for the
 * user when no password is given), and a second, unrelated CA a misconfigured
 * client might trust instead.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClusterCa, issueCertificate, writeTlsFiles, type TlsPair } from '../../common/tls/index.js';
import type { EtcdServerTls } from './etcd.js';

export interface EtcdPki {
  dir: string;
  ca: TlsPair;
  caFile: string;
  /** What etcd serves with (pass to startEtcd / startEtcdCluster). */
  server: EtcdServerTls;
  /** The CA file of a CA that did not sign etcd's certificate. */
  otherCaFile: string;
  /** A client certificate and key named `cn`, signed by the cluster CA (or by the other CA with `untrusted`; long expired with `expired`). */
  client(cn: string, opts?: { untrusted?: boolean; expired?: boolean }): Promise<{ cert: string; key: string }>;
}

export async function makeEtcdPki(dir: string, clientCertAuth = true): Promise<EtcdPki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createClusterCa({ commonName: 'corral test cluster CA', validDays: 2 });
  const other = await createClusterCa({ commonName: 'another CA', validDays: 2 });
  const caFile = join(dir, 'ca.crt');
  const otherCaFile = join(dir, 'other-ca.crt');
  writeFileSync(caFile, ca.certPem);
  writeFileSync(otherCaFile, other.certPem);
  const serverPair = await issueCertificate(ca, { commonName: 'etcd', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'both', validDays: 1 });
  const server = writeTlsFiles(dir, 'etcd', serverPair);
  return {
    dir,
    ca,
    caFile,
    server: { ca: caFile, ...server, clientCertAuth },
    otherCaFile,
    client: async (cn, opts = {}) => {
      const pair = await issueCertificate(opts.untrusted ? other : ca, {
        commonName: cn,
        usage: 'client',
        validDays: 1,
        // Valid for one day, three days ago.
        ...(opts.expired && { notBefore: new Date(Date.now() - 3 * 86_400_000) }),
      });
      return writeTlsFiles(dir, `${opts.untrusted ? 'untrusted-' : ''}${opts.expired ? 'expired-' : ''}client-${cn}`, pair);
    },
  };
}
