import { afterEach, describe, expect, it } from 'vitest';
import tls from 'node:tls';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createClusterCa, issueCertificate, loadTls, writeTlsFiles, type TlsPair } from '../../common/tls/index.js';

const dirs: string[] = [];
const servers: tls.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'corral-tls-'));
  dirs.push(d);
  return d;
};

/**
 * A real TLS server asking for client certificates and judging them itself (as
 * the daemons do, so a refused client is told why): it greets an authorized
 * client with its CN and a refused one with node's verification error.
 */
async function handshake(server: { ca: TlsPair; pair: TlsPair }, client: { ca: string; pair?: TlsPair }): Promise<{ ok: true; greeting: string } | { ok: false; error: string }> {
  const srv = tls.createServer({ ca: server.ca.certPem, cert: server.pair.certPem, key: server.pair.keyPem, requestCert: true, rejectUnauthorized: false }, (sock) => {
    sock.end(sock.authorized ? `hello ${String(sock.getPeerCertificate().subject?.CN)}` : `refused ${String(sock.authorizationError)}`);
  });
  srv.on('tlsClientError', () => undefined);
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return new Promise((resolve) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: client.ca, cert: client.pair?.certPem, key: client.pair?.keyPem });
    let data = '';
    let error: string | undefined;
    sock.on('data', (d) => (data += d.toString()));
    sock.on('error', (err: NodeJS.ErrnoException) => (error = `${err.code ?? ''} ${err.message}`));
    sock.on('close', () => resolve(error === undefined ? { ok: true, greeting: data } : { ok: false, error }));
  });
}

describe('cluster CA and certificates', () => {
  it('issues a CA and leaf certificates with the SANs, key usages and CA constraint asked for', async () => {
    const ca = await createClusterCa({ commonName: 'corral test CA', validDays: 30 });
    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toBe('CN=corral test CA');
    const leaf = await issueCertificate(ca, { commonName: 'master', dnsNames: ['localhost', 'master.corral'], ipAddresses: ['127.0.0.1', '::1'], usage: 'server', validDays: 7 });
    const c = new X509Certificate(leaf.certPem);
    expect(c.ca).toBe(false);
    expect(c.subjectAltName).toBe('DNS:localhost, DNS:master.corral, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(c.checkIssued(caCert) && c.verify(caCert.publicKey)).toBe(true);
    const client = new X509Certificate((await issueCertificate(ca, { commonName: 'agent-1', usage: 'client', validDays: 7 })).certPem);
    expect(client.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    const both = new X509Certificate((await issueCertificate(ca, { commonName: 'node', dnsNames: ['localhost'], usage: 'both', validDays: 7 })).certPem);
    expect(both.keyUsage?.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  });

  it('refuses bad input with clear errors', async () => {
    const ca = await createClusterCa({ commonName: 'ca', validDays: 10 });
    await expect(issueCertificate(ca, { commonName: 'a,b=c', dnsNames: ['x'], usage: 'server', validDays: 1 })).rejects.toThrow(/not a valid certificate name/);
    await expect(issueCertificate(ca, { commonName: 'm', usage: 'server', validDays: 1 })).rejects.toThrow(/needs at least one DNS name or IP address/);
    await expect(issueCertificate(ca, { commonName: 'm', ipAddresses: ['1.2.3'], usage: 'server', validDays: 1 })).rejects.toThrow(/not an IP address/);
    await expect(issueCertificate(ca, { commonName: 'm', dnsNames: ['a b'], usage: 'server', validDays: 1 })).rejects.toThrow(/not a DNS name/);
    await expect(issueCertificate(ca, { commonName: 'm', dnsNames: ['x'], usage: 'server', validDays: 100 })).rejects.toThrow(/outlive its CA/);
    const leaf = await issueCertificate(ca, { commonName: 'm', dnsNames: ['x'], usage: 'server', validDays: 1 });
    await expect(issueCertificate(leaf, { commonName: 'n', dnsNames: ['x'], usage: 'server', validDays: 1 })).rejects.toThrow(/is not a CA/);
    await expect(createClusterCa({ commonName: 'ca', validDays: 0 })).rejects.toThrow(/validDays/);
  });

  it('node:tls accepts the issued certificates both ways (mutual TLS) and passes the client CN', async () => {
    const ca = await createClusterCa({ commonName: 'ca', validDays: 10 });
    const pair = await issueCertificate(ca, { commonName: 'master', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server', validDays: 5 });
    const agent = await issueCertificate(ca, { commonName: 'agent-7', usage: 'client', validDays: 5 });
    expect(await handshake({ ca, pair }, { ca: ca.certPem, pair: agent })).toEqual({ ok: true, greeting: 'hello agent-7' });
    expect(await handshake({ ca, pair }, { ca: ca.certPem })).toEqual({ ok: true, greeting: 'refused UNABLE_TO_GET_ISSUER_CERT' });
  });

  it('a client trusting another CA refuses the server; a server refuses a client certificate from another CA', async () => {
    const ca = await createClusterCa({ commonName: 'ca', validDays: 10 });
    const other = await createClusterCa({ commonName: 'other', validDays: 10 });
    const pair = await issueCertificate(ca, { commonName: 'master', dnsNames: ['localhost'], usage: 'server', validDays: 5 });
    const wrongClient = await handshake({ ca, pair }, { ca: other.certPem, pair: await issueCertificate(ca, { commonName: 'a', usage: 'client', validDays: 5 }) });
    expect(wrongClient.ok).toBe(false);
    expect((wrongClient as { error: string }).error).toMatch(/self[- ]signed|unable to verify|SELF_SIGNED|UNABLE_TO_VERIFY/i);
    const foreignCert = await handshake({ ca, pair }, { ca: ca.certPem, pair: await issueCertificate(other, { commonName: 'a', usage: 'client', validDays: 5 }) });
    expect(foreignCert).toEqual({ ok: true, greeting: 'refused UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });

  it('a server refuses an expired client certificate', async () => {
    const ca = await createClusterCa({ commonName: 'ca', validDays: 10 });
    const pair = await issueCertificate(ca, { commonName: 'master', dnsNames: ['localhost'], usage: 'server', validDays: 5 });
    const expired = await issueCertificate(ca, { commonName: 'old', usage: 'client', validDays: 1, notBefore: new Date(Date.now() - 3 * 86_400_000) });
    expect(await handshake({ ca, pair }, { ca: ca.certPem, pair: expired })).toEqual({ ok: true, greeting: 'refused CERT_HAS_EXPIRED' });
    // A server certificate used as a client certificate has the wrong purpose.
    expect(await handshake({ ca, pair }, { ca: ca.certPem, pair })).toEqual({ ok: true, greeting: 'refused INVALID_PURPOSE' });
  });
});

describe('TLS files', () => {
  it('writes the key 0600 and loads a matching set', async () => {
    const dir = tmp();
    const ca = await createClusterCa({ commonName: 'ca', validDays: 10 });
    const caFiles = writeTlsFiles(dir, 'ca', ca);
    const files = writeTlsFiles(dir, 'master', await issueCertificate(ca, { commonName: 'master', dnsNames: ['localhost'], usage: 'server', validDays: 5 }));
    expect(statSync(files.key).mode & 0o777).toBe(0o600);
    expect(statSync(caFiles.key).mode & 0o777).toBe(0o600);
    const m = loadTls({ ca: caFiles.cert, cert: files.cert, key: files.key });
    expect(m.subject).toBe('master');
    expect(m.ca).toContain('BEGIN CERTIFICATE');
    expect(m.key).toContain('PRIVATE KEY');
  });

  it('explains what is wrong: missing file, not PEM, key of another certificate, expired, not yet valid, other CA', async () => {
    const dir = tmp();
    const ca = await createClusterCa({ commonName: 'ca', validDays: 10 });
    const caFile = writeTlsFiles(dir, 'ca', ca).cert;
    const a = writeTlsFiles(dir, 'a', await issueCertificate(ca, { commonName: 'a', dnsNames: ['localhost'], usage: 'server', validDays: 5 }));
    const b = writeTlsFiles(dir, 'b', await issueCertificate(ca, { commonName: 'b', dnsNames: ['localhost'], usage: 'server', validDays: 5 }));
    expect(() => loadTls({ ca: join(dir, 'nope.crt') })).toThrow(`tls.ca: the CA certificate file ${join(dir, 'nope.crt')} does not exist`);
    writeFileSync(join(dir, 'junk.crt'), 'hello');
    expect(() => loadTls({ ca: join(dir, 'junk.crt') })).toThrow(/holds no PEM block/);
    expect(() => loadTls({ ca: a.cert })).toThrow(/is not a CA certificate/);
    expect(() => loadTls({ ca: caFile, cert: a.cert })).toThrow(/cert and key go together; key is missing/);
    expect(() => loadTls({ ca: caFile, cert: a.cert, key: b.key })).toThrow(/the key .*b\.key does not belong to the certificate .*a\.crt \("a"\)/);
    const old = writeTlsFiles(dir, 'old', await issueCertificate(ca, { commonName: 'old', dnsNames: ['localhost'], usage: 'server', validDays: 1, notBefore: new Date(Date.now() - 2 * 86_400_000) }));
    expect(() => loadTls({ ca: caFile, cert: old.cert, key: old.key })).toThrow(/tls\.cert: the certificate "old" expired on \d{4}-/);
    const early = writeTlsFiles(
      dir,
      'early',
      await issueCertificate(ca, { commonName: 'early', dnsNames: ['localhost'], usage: 'server', validDays: 1, notBefore: new Date(Date.now() + 86_400_000) }),
    );
    expect(() => loadTls({ ca: caFile, cert: early.cert, key: early.key })).toThrow(/"early" is not valid yet: valid from .*check this host's clock/);
    const other = await createClusterCa({ commonName: 'other', validDays: 10 });
    const otherCa = writeTlsFiles(dir, 'other', other).cert;
    expect(() => loadTls({ ca: otherCa, cert: a.cert, key: a.key }, '--tls')).toThrow(/--tls: the certificate .*a\.crt \("a"\) was not issued by the CA in .*other\.crt \("other"\)/);
  });
});
