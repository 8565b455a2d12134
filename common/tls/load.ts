/**
 * TLS material on disk: writing a pair (the key readable by its owner only)
 * and loading the `tls: { ca, cert, key }` files a daemon or client is given
 * into Node's tls options, with every check that would otherwise surface as
 * an opaque handshake failure made at start-up instead: each file exists and
 * parses, the key belongs to the certificate, the certificate is valid now and
 * was issued by the CA.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { CorralError } from '../../contracts/errors.js';
import type { TlsPair } from './certs.js';

/** File paths as configured: `ca` to verify peers; `cert` and `key` to present (both or neither); `crl`, the CA's revocation list. */
export interface TlsFiles {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  crl?: string | undefined;
}

/** PEM contents ready for tls.createServer / tls.connect / undici's `connect`. */
export interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
  /** PEM revocation list of the CA: peers whose certificate it names are refused. */
  crl?: string;
  /** How many certificates the revocation list names, for logs. */
  revoked?: number;
  /** The certificate's subject CN and validity, for logs (never the key). */
  subject?: string;
  validTo?: Date;
}

/** Write `<dir>/<name>.crt` and `<dir>/<name>.key`; the key is 0600 from the start (never world-readable, even briefly). */
export function writeTlsFiles(dir: string, name: string, pair: TlsPair): { cert: string; key: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(key, pair.keyPem, { mode: 0o600 });
  // An existing file keeps its mode on overwrite: set it again.
  chmodSync(key, 0o600);
  writeFileSync(cert, pair.certPem, { mode: 0o644 });
  return { cert, key };
}

function readPem(path: string, what: string, where: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CorralError('INVALID_ARGUMENT', `${where}: the ${what} file ${path} does not exist`);
    if (code === 'EACCES') throw new CorralError('INVALID_ARGUMENT', `${where}: the ${what} file ${path} is not readable by this process (permission denied)`);
    throw new CorralError('INVALID_ARGUMENT', `${where}: cannot read the ${what} file ${path}: ${(err as Error).message}`);
  }
  if (!text.includes('-----BEGIN ')) throw new CorralError('INVALID_ARGUMENT', `${where}: the ${what} file ${path} holds no PEM block`);
  return text;
}

function parseCert(pem: string, what: string, path: string, where: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `${where}: the ${what} file ${path} is not a PEM certificate: ${(err as Error).message}`);
  }
}

const cnOf = (cert: X509Certificate): string => /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? cert.subject;

/** Refuse a certificate outside its validity window, saying which bound and when. */
export function checkValidity(cert: X509Certificate, what: string, now = new Date()): void {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now > to) throw new CorralError('FAILED_PRECONDITION', `${what} "${cnOf(cert)}" expired on ${to.toISOString()} (now ${now.toISOString()}); issue a new one`);
  if (now < from) throw new CorralError('FAILED_PRECONDITION', `${what} "${cnOf(cert)}" is not valid yet: valid from ${from.toISOString()} (now ${now.toISOString()}); check this host's clock`);
}

/**
 * Read and check TLS files. `where` names the setting in errors (e.g. "tls"
 * for a daemon's config block, "--tls-ca" for a CLI flag).
 */
export function loadTls(files: TlsFiles, where = 'tls'): TlsMaterial {
  const out: TlsMaterial = {};
  let caCert: X509Certificate | undefined;
  if (files.ca) {
    out.ca = readPem(files.ca, 'CA certificate', `${where}.ca`);
    caCert = parseCert(out.ca, 'CA certificate', files.ca, `${where}.ca`);
    if (!caCert.ca) throw new CorralError('INVALID_ARGUMENT', `${where}.ca: ${files.ca} is not a CA certificate (no basicConstraints CA:true)`);
    checkValidity(caCert, `${where}.ca: the CA certificate`);
  }
  if (Boolean(files.cert) !== Boolean(files.key)) {
    throw new CorralError('INVALID_ARGUMENT', `${where}: cert and key go together; ${files.cert ? 'key' : 'cert'} is missing`);
  }
  if (files.cert && files.key) {
    out.cert = readPem(files.cert, 'certificate', `${where}.cert`);
    out.key = readPem(files.key, 'private key', `${where}.key`);
    const cert = parseCert(out.cert, 'certificate', files.cert, `${where}.cert`);
    let key: KeyObject;
    try {
      key = createPrivateKey(out.key);
    } catch (err) {
      throw new CorralError('INVALID_ARGUMENT', `${where}.key: ${files.key} is not a PEM private key: ${(err as Error).message}`);
    }
    if (!cert.checkPrivateKey(key)) throw new CorralError('INVALID_ARGUMENT', `${where}: the key ${files.key} does not belong to the certificate ${files.cert} ("${cnOf(cert)}")`);
    checkValidity(cert, `${where}.cert: the certificate`);
    if (caCert && !(cert.checkIssued(caCert) && cert.verify(caCert.publicKey))) {
      throw new CorralError('INVALID_ARGUMENT', `${where}: the certificate ${files.cert} ("${cnOf(cert)}") was not issued by the CA in ${files.ca} ("${cnOf(caCert)}")`);
    }
    out.subject = cnOf(cert);
    out.validTo = new Date(cert.validTo);
  }
  if (files.crl) {
    if (!files.ca || !caCert) throw new CorralError('INVALID_ARGUMENT', `${where}.crl: a revocation list needs the CA that signed it (${where}.ca)`);
    out.crl = readPem(files.crl, 'revocation list', `${where}.crl`);
    out.revoked = checkRevocationList(out.crl, files.crl, caCert, `${where}.crl`);
  }
  return out;
}

/** @peculiar/x509 takes ~90 ms to load: only a daemon given a revocation list pays for it. */
let x509Lib: typeof import('@peculiar/x509') | undefined;
function x509(): typeof import('@peculiar/x509') {
  if (!x509Lib) {
    const require = createRequire(import.meta.url);
    require('reflect-metadata');
    x509Lib = require('@peculiar/x509') as typeof import('@peculiar/x509');
  }
  return x509Lib;
}

/**
 * A revocation list OpenSSL would choke on at the first handshake fails here
 * instead, saying why: with a list of another CA, or one past its nextUpdate,
 * every peer certificate would be refused. Returns how many it revokes.
 */
function checkRevocationList(pem: string, path: string, caCert: X509Certificate, where: string): number {
  const lib = x509();
  let crl: InstanceType<typeof lib.X509Crl>;
  try {
    crl = new lib.X509Crl(pem);
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `${where}: ${path} is not a PEM certificate revocation list: ${(err as Error).message}`);
  }
  const caSubject = new lib.X509Certificate(caCert.raw).subject;
  if (crl.issuer !== caSubject) throw new CorralError('INVALID_ARGUMENT', `${where}: the revocation list ${path} was issued by "${crl.issuer}", not by the CA "${caSubject}"`);
  const now = new Date();
  if (crl.nextUpdate && crl.nextUpdate < now) {
    throw new CorralError(
      'FAILED_PRECONDITION',
      `${where}: the revocation list ${path} expired on ${crl.nextUpdate.toISOString()}; make a new one (corral security revoke) — with it, every certificate would be refused`,
    );
  }
  return crl.entries.length;
}

/** The CN of a peer certificate's subject as node:tls reports it (getPeerCertificate().subject.CN). */
export function peerCommonName(subject: Record<string, string | string[]> | undefined): string | undefined {
  const cn = subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}
