/**
 * TLS for the clients of corral's APIs: the CA that signs the servers'
 * certificates and, for mutual TLS (an agent towards the master), the client's
 * own certificate and key. PEM contents, not paths: the caller reads and checks
 * its files (common/tls loadTls) and hands the material on.
 *
 * A TLS failure is turned into an error that says what to fix: node's own
 * messages ("self-signed certificate in certificate chain") do not name the
 * server or the setting involved.
 */
import { Agent, type Dispatcher } from 'undici';
import { CorralError } from '../errors.js';

export interface ClientTls {
  /** PEM of the CA(s) to trust instead of the system's. */
  ca?: string | undefined;
  /** PEM client certificate and key, presented when the server asks for one. */
  cert?: string | undefined;
  key?: string | undefined;
  /** PEM revocation list of the CA: a server whose certificate it names is refused. */
  crl?: string | undefined;
}

/** undici's `connect` options for `tls` (empty without). */
export function tlsConnect(tls: ClientTls | undefined): { connect?: { ca?: string; cert?: string; key?: string; crl?: string } } {
  if (!tls || (tls.ca === undefined && tls.cert === undefined)) return {};
  return {
    connect: {
      ...(tls.ca !== undefined && { ca: tls.ca }),
      ...(tls.cert !== undefined && { cert: tls.cert }),
      ...(tls.key !== undefined && { key: tls.key }),
      ...(tls.crl !== undefined && { crl: tls.crl }),
    },
  };
}

/** A dispatcher for any origin with `tls` (for event streams, whose origin follows the leader). */
export function tlsAgent(tls: ClientTls | undefined, opts: Agent.Options = {}): Dispatcher {
  return new Agent({ ...opts, ...tlsConnect(tls) });
}

const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

function codeChain(err: unknown): { code: string; message: string }[] {
  const out: { code: string; message: string }[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    out.push({ code: typeof code === 'string' ? code : '', message: e.message });
  }
  return out;
}

/**
 * A clear CorralError (FAILED_PRECONDITION: retrying will not help) when `err`
 * is a TLS failure talking to `url`; undefined otherwise.
 */
export function tlsFailure(err: unknown, url: string): CorralError | undefined {
  if (err instanceof CorralError) return undefined;
  for (const { code, message } of codeChain(err)) {
    let what: string | undefined;
    if (UNTRUSTED.has(code)) what = `its certificate is not signed by the CA this client trusts (${code}: ${message}); give the cluster's CA certificate (tls.ca, --tls-ca or CORRAL_TLS_CA)`;
    else if (code === 'CERT_REVOKED') what = `its certificate has been revoked by the cluster CA (${code}); the server needs a new certificate`;
    else if (code === 'CERT_HAS_EXPIRED') what = `its certificate has expired (${code}); the server needs a new certificate`;
    else if (code === 'CERT_NOT_YET_VALID') what = `its certificate is not valid yet (${code}); check the clocks`;
    else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') what = `its certificate does not name this host (${message}); connect by a name or address in the certificate`;
    else if (/wrong version number|packet length too long|http request/i.test(message) && (code === 'EPROTO' || code.startsWith('ERR_SSL')))
      what = 'it does not speak TLS; use an http:// URL for a server started with --insecure';
    else if (/alert certificate required/i.test(message)) what = 'it requires a client certificate (mutual TLS); configure tls.cert and tls.key';
    else if (/alert (certificate expired|bad certificate|unknown ca|certificate unknown|certificate revoked)/i.test(message)) what = `it refused this client's certificate (${message.trim()})`;
    if (what) return new CorralError('FAILED_PRECONDITION', `TLS with ${url} failed: ${what}`, { tls: code || message }, { cause: err });
  }
  return undefined;
}
