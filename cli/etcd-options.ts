/**
 * etcd on the command line of the daemons that keep their state there
 * (master, services, discovery): the endpoints and how to reach them —
 * `--etcd-ca`, `--etcd-cert`, `--etcd-key` (PEM files) and `--etcd-user` with
 * `--etcd-password-file`. They become the store section's `etcdTls` and
 * `etcdAuth`, which the Store and the election read the same way
 * (common/store/etcd-connection.ts). A password is never a flag: it comes
 * from the file, else from CORRAL_ETCD_PASSWORD.
 */
import type { Command } from 'commander';
import { CorralError } from '../contracts/errors.js';

interface EtcdFlags {
  storeBackend?: string;
  etcdEndpoints?: string[];
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

/** Add the etcd store flags to a daemon's command. */
export function addEtcdOptions(cmd: Command): Command {
  return cmd
    .option('--etcd-endpoints <urls>', 'comma-separated etcd URLs (https:// with --etcd-ca)', (v: string) => v.split(',').filter(Boolean))
    .option('--etcd-ca <file>', "CA certificate (PEM) that signed etcd's certificates: etcd over TLS (store.etcdTls.ca)")
    .option('--etcd-cert <file>', 'client certificate (PEM) to present to etcd; its CN is the etcd user unless --etcd-user is given (store.etcdTls.cert)')
    .option('--etcd-key <file>', 'key of --etcd-cert (PEM, mode 0600) (store.etcdTls.key)')
    .option('--etcd-user <name>', 'etcd user (store.etcdAuth.username); its password from --etcd-password-file, else the environment variable CORRAL_ETCD_PASSWORD')
    .option('--etcd-password-file <file>', "file whose first line is --etcd-user's password (never a flag)");
}

/**
 * The store section the flags give (undefined when none is set: the config
 * file and environment decide). Flags given without `--store-backend` and
 * with etcd settings mean the etcd backend; the rest of the store section
 * (namespace, …) may come from the config file, merged under the flags.
 */
export function etcdStoreFlags(o: EtcdFlags): Record<string, unknown> | undefined {
  const tls = { ca: o.etcdCa, cert: o.etcdCert, key: o.etcdKey };
  const anyTls = Object.values(tls).some((v) => v !== undefined);
  if (o.etcdPasswordFile !== undefined && o.etcdUser === undefined) {
    throw new CorralError('INVALID_ARGUMENT', '--etcd-password-file needs --etcd-user (the user whose password it holds)');
  }
  if (o.etcdCa === undefined && (o.etcdCert !== undefined || o.etcdKey !== undefined)) {
    throw new CorralError('INVALID_ARGUMENT', "--etcd-cert and --etcd-key need --etcd-ca (the CA etcd's certificate is checked against)");
  }
  const any = o.storeBackend !== undefined || o.etcdEndpoints !== undefined || anyTls || o.etcdUser !== undefined;
  if (!any) return undefined;
  return {
    backend: o.storeBackend ?? 'etcd',
    etcdEndpoints: o.etcdEndpoints,
    ...(anyTls && { etcdTls: tls }),
    ...(o.etcdUser !== undefined && { etcdAuth: { username: o.etcdUser, passwordFile: o.etcdPasswordFile } }),
  };
}
