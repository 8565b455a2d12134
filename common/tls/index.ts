/** The cluster CA, certificates, and TLS files for daemons and clients (see certs.ts, load.ts, explain.ts). */
export { createClusterCa, createRevocationList, issueCertificate, revokedIn, type CertUsage, type IssueOptions, type RevocationReason, type RevokedCertificate, type TlsPair } from './certs.js';
export { checkValidity, loadTls, peerCommonName, writeTlsFiles, type TlsFiles, type TlsMaterial } from './load.js';
export { daemonClientTls, daemonTls, tlsConfigFields, tlsConfigSchema, type TlsConfig } from './config.js';
