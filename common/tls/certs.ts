/**
 * The cluster CA and the certificates it issues, made with @peculiar/x509 on
 * Node's WebCrypto: ECDSA P-256 keys, SHA-256 signatures. Small keys and fast
 * handshakes; every TLS stack corral talks to (Node, Go's etcd and Consul
 * clients, curl) accepts them.
 *
 * The CA is a self-signed root (basicConstraints CA:true, pathLen 0: it signs
 * leaf certificates only). A leaf names its host in subjectAltName (DNS and IP
 * entries: TLS clients match the SAN, never the CN) and says what it may be used
 * for in extendedKeyUsage: serverAuth for a daemon's listener, clientAuth for a
 * client certificate (an agent towards the master), both for a daemon that is
 * both. The CN of a client certificate is the principal it authenticates.
 */
import 'reflect-metadata';
import { createPrivateKey, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { CorralError } from '../../contracts/errors.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
x509.cryptoProvider.set(crypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Issued certificates start a little in the past so a peer whose clock lags still accepts them. */
const BACKDATE_MS = 5 * 60_000;

/** A certificate and its private key, both PEM (the key PKCS#8). */
export interface TlsPair {
  certPem: string;
  keyPem: string;
}

export type CertUsage = 'server' | 'client' | 'both';

export interface IssueOptions {
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: CertUsage;
  validDays: number;
  /** Start of validity (default: now, minus a few minutes of clock skew). */
  notBefore?: Date;
}

/** Certificate fields may hold printable names only: no DN separators a reader could misparse. */
function checkName(what: string, name: string): void {
  if (!name || name.length > 64 || /[,=+<>#;"\\\n\r\0]/.test(name)) {
    throw new CorralError('INVALID_ARGUMENT', `${what} ${JSON.stringify(name)} is not a valid certificate name (1–64 characters, no , = + < > # ; " \\)`);
  }
}

function checkDays(days: number): void {
  if (!Number.isFinite(days) || days <= 0 || days > 36_500) throw new CorralError('INVALID_ARGUMENT', `validDays must be between 1 and 36500, got ${days}`);
}

const randomSerial = (): string => {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // a positive INTEGER
  return Buffer.from(b).toString('hex');
};

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify']);
}

/** A new self-signed cluster CA. */
export async function createClusterCa(opts: { commonName: string; validDays: number }): Promise<TlsPair> {
  checkName('commonName', opts.commonName);
  checkDays(opts.validDays);
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${opts.commonName}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + opts.validDays * DAY_MS),
    signingAlgorithm: SIGN_ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

/** Read a CA pair back: its certificate must be a CA and its key must be the certificate's. */
async function openCa(ca: TlsPair): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  let cert: x509.X509Certificate;
  let key: CryptoKey;
  try {
    cert = new x509.X509Certificate(ca.certPem);
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `the CA certificate is not a PEM certificate: ${(err as Error).message}`);
  }
  try {
    key = await crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.keyPem), KEY_ALG, false, ['sign']);
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `the CA key is not a PEM PKCS#8 ECDSA P-256 key: ${(err as Error).message}`);
  }
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) throw new CorralError('INVALID_ARGUMENT', `certificate ${cert.subject} is not a CA (no basicConstraints CA:true)`);
  if (!new NodeX509(ca.certPem).checkPrivateKey(createPrivateKey(ca.keyPem))) {
    throw new CorralError('INVALID_ARGUMENT', `the CA key does not belong to the CA certificate ${cert.subject}`);
  }
  return { cert, key };
}

/** A leaf certificate signed by `ca`, with a fresh key. */
export async function issueCertificate(ca: TlsPair, opts: IssueOptions): Promise<TlsPair> {
  checkName('commonName', opts.commonName);
  checkDays(opts.validDays);
  const dnsNames = opts.dnsNames ?? [];
  const ipAddresses = opts.ipAddresses ?? [];
  for (const d of dnsNames) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*$/.test(d) || d.length > 253) {
      throw new CorralError('INVALID_ARGUMENT', `dnsNames: ${JSON.stringify(d)} is not a DNS name`);
    }
  }
  for (const ip of ipAddresses) if (!isIP(ip)) throw new CorralError('INVALID_ARGUMENT', `ipAddresses: ${JSON.stringify(ip)} is not an IP address`);
  if (opts.usage === 'server' || opts.usage === 'both') {
    if (dnsNames.length + ipAddresses.length === 0) throw new CorralError('INVALID_ARGUMENT', `a ${opts.usage} certificate needs at least one DNS name or IP address to be matched by clients`);
  }
  const issuer = await openCa(ca);
  const keys = await newKeys();
  const start = opts.notBefore ?? new Date();
  const notBefore = opts.notBefore ?? new Date(start.getTime() - BACKDATE_MS);
  const notAfter = new Date(start.getTime() + opts.validDays * DAY_MS);
  if (notAfter > issuer.cert.notAfter) {
    // A leaf outliving its CA would be refused the day the CA expires anyway: say so now.
    throw new CorralError('INVALID_ARGUMENT', `a certificate valid ${opts.validDays} days would outlive its CA (valid until ${issuer.cert.notAfter.toISOString()})`);
  }
  const eku: x509.ExtendedKeyUsage[] = [];
  if (opts.usage !== 'client') eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (opts.usage !== 'server') eku.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(eku, false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey),
  ];
  const names = [...dnsNames.map((value) => ({ type: 'dns' as const, value })), ...ipAddresses.map((value) => ({ type: 'ip' as const, value }))];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${opts.commonName}`,
    issuer: issuer.cert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN_ALG,
    publicKey: keys.publicKey,
    signingKey: issuer.key,
    extensions,
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKeyPem(keys.privateKey) };
}

/** Why a certificate was revoked (RFC 5280 CRLReason, the ones an operator has use for). */
export type RevocationReason = 'unspecified' | 'keyCompromise' | 'affiliationChanged' | 'superseded' | 'cessationOfOperation';

export interface RevokedCertificate {
  /** Serial number, hexadecimal as `openssl x509 -serial` and node's X509Certificate print it. */
  serial: string;
  revokedAt: Date;
  reason: RevocationReason;
}

/**
 * A certificate revocation list signed by the CA, naming every certificate in
 * `revoked`, valid `validDays` (a peer holding an expired list refuses every
 * certificate, so the list outlives a year's certificates by default).
 */
export async function createRevocationList(ca: TlsPair, revoked: RevokedCertificate[], validDays: number): Promise<string> {
  checkDays(validDays);
  const issuer = await openCa(ca);
  for (const r of revoked) if (!/^[0-9a-fA-F]{1,40}$/.test(r.serial)) throw new CorralError('INVALID_ARGUMENT', `serial ${JSON.stringify(r.serial)} is not a hexadecimal serial number`);
  const now = new Date();
  const nextUpdate = new Date(now.getTime() + validDays * DAY_MS);
  if (nextUpdate > issuer.cert.notAfter)
    throw new CorralError('INVALID_ARGUMENT', `a revocation list valid ${validDays} days would outlive its CA (valid until ${issuer.cert.notAfter.toISOString()})`);
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.cert.subject,
    thisUpdate: new Date(now.getTime() - BACKDATE_MS),
    nextUpdate,
    signingAlgorithm: SIGN_ALG,
    signingKey: issuer.key,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey)],
    entries: revoked.map((r) => ({ serialNumber: r.serial.toLowerCase(), revocationDate: r.revokedAt, reason: x509.X509CrlReason[r.reason] })),
  });
  // RFC 7468 names the label "X509 CRL", which OpenSSL requires; the library writes "CRL".
  return crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----');
}

/** The entries of a revocation list made by createRevocationList (to add to it). */
export function revokedIn(crlPem: string): RevokedCertificate[] {
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(crlPem);
  } catch (err) {
    throw new CorralError('INVALID_ARGUMENT', `not a PEM certificate revocation list: ${(err as Error).message}`);
  }
  return crl.entries.map((e) => ({ serial: e.serialNumber.toLowerCase(), revokedAt: e.revocationDate, reason: (x509.X509CrlReason[e.reason ?? 0] ?? 'unspecified') as RevocationReason }));
}
