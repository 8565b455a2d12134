/**
 * The `tls` block and `insecure` switch every daemon's config has, and what a
 * daemon makes of them at start-up: HTTPS with its certificate, or plain HTTP
 * only when asked for by name. A daemon given neither refuses to start: a
 * forgotten setting must not leave a cluster's traffic readable.
 */
import { z } from '../validate.js';
import { CorralError } from '../../contracts/errors.js';
import { loadTls, type TlsMaterial } from './load.js';

/** `tls: { ca, cert, key }`: file paths (PEM). */
export const tlsConfigSchema = z
  .object({
    /** CA certificate: verifies the peers (clients' certificates, and the servers this daemon calls). */
    ca: z.string().min(1).optional(),
    /** This daemon's certificate and its key (0600). */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** The CA's certificate revocation list (PEM, `corral security revoke`): peers it names are refused. */
    crl: z.string().min(1).optional(),
  })
  .strict()
  .optional();

/** Add to a daemon's schema: `...tlsConfigFields`. */
export const tlsConfigFields = {
  tls: tlsConfigSchema,
  /** Plain HTTP, for local use only: must be asked for (flag --insecure, `insecure: true`). */
  insecure: z.boolean().default(false),
};

export type TlsConfig = z.output<typeof tlsConfigSchema>;

interface Where {
  /** The daemon, for messages: "the master". */
  daemon: string;
  /** Its environment prefix, e.g. CORRAL_MASTER_. */
  envPrefix: string;
}

/**
 * The daemon's server TLS: the loaded material, or undefined for plain HTTP
 * (only with `insecure`). Throws a clear INVALID_ARGUMENT otherwise.
 */
export function daemonTls(config: { tls?: TlsConfig | undefined; insecure: boolean }, where: Where): TlsMaterial | undefined {
  const t = config.tls;
  const hasCert = Boolean(t?.cert || t?.key);
  if (config.insecure) {
    if (hasCert) throw new CorralError('INVALID_ARGUMENT', `${where.daemon}: both a TLS certificate (tls.cert) and --insecure (insecure: true) are given; choose one`);
    return undefined;
  }
  if (!hasCert) {
    throw new CorralError(
      'INVALID_ARGUMENT',
      `${where.daemon} will not serve plain HTTP unless told to: give it a certificate — tls.cert, tls.key and tls.ca in its config file, ` +
        `${where.envPrefix}TLS__CERT / ${where.envPrefix}TLS__KEY / ${where.envPrefix}TLS__CA, or --tls-cert/--tls-key/--tls-ca — ` +
        `or pass --insecure (insecure: true, ${where.envPrefix}INSECURE=true) for local use only`,
    );
  }
  return loadTls({ ca: t?.ca, cert: t?.cert, key: t?.key, crl: t?.crl }, 'tls');
}

/**
 * What the daemon needs to call other daemons (the master, the store API): the
 * CA to trust and its certificate to present. Undefined when nothing is set
 * (an insecure daemon, or the system's CAs).
 */
export function daemonClientTls(config: { tls?: TlsConfig | undefined }): TlsMaterial | undefined {
  const t = config.tls;
  if (!t?.ca && !t?.cert) return undefined;
  return loadTls({ ca: t.ca, cert: t.cert, key: t.key, crl: t.crl }, 'tls');
}
