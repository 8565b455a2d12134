/**
 * Revoking certificates of the cluster CA (`corral security revoke`): the
 * CA's signed revocation list grows and keeps earlier entries; a master given
 * it refuses a revoked agent certificate at the connection, saying so, while
 * the agent's other certificates still register; a client given it refuses a
 * server whose certificate is revoked; and a list of another CA, or an
 * expired one, stops a daemon at start rather than refusing every peer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate, webcrypto } from 'node:crypto';
import { request, Agent as UndiciAgent } from 'undici';
import { createClusterCa, createRevocationList, issueCertificate, loadTls, revokedIn, writeTlsFiles, type TlsPair } from '../../common/tls/index.js';
import { registerOverTls } from '../harness/tls-agent.js';
import { nodeTlsFiles, revokeCertificates } from '../../provision/src/index.js';
import { startTestMaster, type TestMaster } from '../harness/master.js';

const ROOT = join(import.meta.dirname, '..', '..');

let dir: string;
let caDir: string;
let ca: TlsPair;
let master: TestMaster | undefined;
const names = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

function corral(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/corral.ts'), ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const registerAs = (pair: TlsPair): Promise<string> => registerOverTls(master!.url, { ca: ca.certPem, cert: pair.certPem, key: pair.keyPem });

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber.toLowerCase();

let stolen: TlsPair;
let kept: TlsPair;
let masterPair: TlsPair;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'corral-tls-revoke-'));
  caDir = join(dir, 'ca');
  ca = await createClusterCa({ commonName: 'revocation test CA', validDays: 3650 });
  writeTlsFiles(caDir, 'ca', ca);
  masterPair = await issueCertificate(ca, { commonName: 'master', ...names, usage: 'server', validDays: 10 });
  stolen = await issueCertificate(ca, { commonName: 'agent-h1', usage: 'client', validDays: 10 });
  kept = await issueCertificate(ca, { commonName: 'agent-h2', usage: 'client', validDays: 10 });
  writeTlsFiles(dir, 'master', masterPair);
  writeTlsFiles(dir, 'stolen', stolen);
});

afterAll(async () => {
  await master?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('corral security revoke', () => {
  it('puts a certificate on the CA-signed list by file or serial, keeps earlier entries, and refuses what it cannot revoke', async () => {
    const first = await corral(['security', 'revoke', '--ca-dir', caDir, '--cert', join(dir, 'stolen.crt'), '--json']);
    expect(first.code, first.stderr).toBe(0);
    const listed = JSON.parse(first.stdout) as Array<{ serial: string; reason: string }>;
    expect(listed).toMatchObject([{ serial: serialOf(stolen.certPem), reason: 'keyCompromise' }]);
    const other = await issueCertificate(ca, { commonName: 'agent-h3', usage: 'client', validDays: 10 });
    const second = await revokeCertificates(caDir, { serials: [serialOf(other.certPem)], reason: 'superseded', validDays: 30 });
    expect(second.map((e) => [e.serial, e.reason])).toEqual([
      [serialOf(stolen.certPem), 'keyCompromise'],
      [serialOf(other.certPem), 'superseded'],
    ]);
    // Revoking again changes nothing; the file is the CA's list, readable by anyone (it holds no secret).
    expect((await revokeCertificates(caDir, { certs: [join(dir, 'stolen.crt')], reason: 'unspecified', validDays: 30 })).length).toBe(2);
    expect(revokedIn(readFileSync(join(caDir, 'ca.crl'), 'utf8')).map((e) => e.serial)).toEqual([serialOf(stolen.certPem), serialOf(other.certPem)]);

    const foreignCa = await createClusterCa({ commonName: 'another CA', validDays: 30 });
    writeTlsFiles(dir, 'foreign', await issueCertificate(foreignCa, { commonName: 'x', usage: 'client', validDays: 5 }));
    const refused = await corral(['security', 'revoke', '--ca-dir', caDir, '--cert', join(dir, 'foreign.crt')]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/not issued by the CA in .*its list cannot revoke it/);
    expect((await corral(['security', 'revoke', '--ca-dir', caDir])).stderr).toMatch(/nothing to revoke: give --cert FILE or --serial HEX/);
    expect((await corral(['security', 'revoke', '--ca-dir', dir, '--serial', 'ab'])).stderr).toMatch(/holds no CA key \(ca\.key\)/);
    expect((await corral(['security', 'revoke', '--ca-dir', caDir, '--serial', 'xyz'])).stderr).toMatch(/"xyz" is not a hexadecimal serial number/);
  });

  it("a node's tls directory with the list gives it to every daemon; node bundles and a CA's node up copy it there", () => {
    const node = join(dir, 'node-tls');
    mkdirSync(node);
    expect(nodeTlsFiles(node, 'agent').crl).toBeUndefined();
    copyFileSync(join(caDir, 'ca.crl'), join(node, 'ca.crl'));
    expect(nodeTlsFiles(node, 'agent').crl).toBe(join(node, 'ca.crl'));
    expect(existsSync(nodeTlsFiles(node, 'master').crl!)).toBe(true);
  });
});

describe('daemons given the list', () => {
  beforeAll(async () => {
    master = await startTestMaster({ tls: { ca: join(caDir, 'ca.crt'), cert: join(dir, 'master.crt'), key: join(dir, 'master.key'), crl: join(caDir, 'ca.crl') } }, join(dir, 'master-work'));
  });

  it('the master refuses a revoked agent certificate at the connection, naming it; another certificate of the same CA registers', async () => {
    const err = await registerAs(stolen).then(
      () => undefined,
      (e: unknown) => e as { status?: number; message: string },
    );
    expect(err?.status).toBe(401);
    expect(err?.message).toBe(`client certificate refused: "agent-h1" (serial ${new X509Certificate(stolen.certPem).serialNumber}) has been revoked by the cluster CA (CERT_REVOKED)`);
    expect(await registerAs(kept)).toMatch(/.+/);
  });

  it('a client given the list refuses a server whose certificate is revoked, saying so', async () => {
    // The master's own certificate revoked: a client holding the new list no longer trusts it.
    const crl = await createRevocationList(ca, [{ serial: serialOf(masterPair.certPem), revokedAt: new Date(), reason: 'keyCompromise' }], 30);
    const dispatcher = new UndiciAgent({ connect: { ca: ca.certPem, crl } });
    const { SchedulerClient } = await import('../../contracts/client/scheduler-client.js');
    const client = new SchedulerClient({ master: master!.url, tls: { ca: ca.certPem, crl }, framework: { user: '', name: 'revoked-server' } });
    try {
      await expect(request(`${master!.url}/health`, { dispatcher })).rejects.toMatchObject({ code: 'CERT_REVOKED' });
      await expect(client.subscribe()).rejects.toThrow(/its certificate has been revoked by the cluster CA \(CERT_REVOKED\)/);
    } finally {
      await client.close().catch(() => undefined);
      await dispatcher.close();
    }
  });

  it('a list of another CA, or one past its nextUpdate, stops the daemon at start with the reason', async () => {
    const foreignCa = await createClusterCa({ commonName: 'another CA', validDays: 30 });
    const foreignList = join(dir, 'foreign.crl');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(foreignList, await createRevocationList(foreignCa, [], 10));
    expect(() => loadTls({ ca: join(caDir, 'ca.crt'), crl: foreignList })).toThrow(/the revocation list .*foreign\.crl was issued by "CN=another CA", not by the CA "CN=revocation test CA"/);
    expect(() => loadTls({ crl: join(caDir, 'ca.crl') })).toThrow(/a revocation list needs the CA that signed it \(tls\.ca\)/);
    const notAList = join(dir, 'master.crt');
    expect(() => loadTls({ ca: join(caDir, 'ca.crt'), crl: notAList })).toThrow(/is not a PEM certificate revocation list/);
    // Past its nextUpdate, OpenSSL would refuse every peer: refused at start, saying how to mend it.
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    const key = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.keyPem), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const day = 86_400_000;
    const stale = await x509.X509CrlGenerator.create({
      issuer: new x509.X509Certificate(ca.certPem).subject,
      thisUpdate: new Date(Date.now() - 3 * day),
      nextUpdate: new Date(Date.now() - day),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      signingKey: key,
    });
    const staleFile = join(dir, 'stale.crl');
    writeFileSync(staleFile, stale.toString('pem'));
    expect(() => loadTls({ ca: join(caDir, 'ca.crt'), crl: staleFile })).toThrow(/the revocation list .*stale\.crl expired on .*make a new one \(corral security revoke\)/);
  });
});
