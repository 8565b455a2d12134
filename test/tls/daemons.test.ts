/**
 * TLS between real daemons: a master on HTTPS asking for client certificates,
 * an agent registering over mutual TLS, the clients' and the server's refusals
 * (wrong CA, no client certificate, an expired one), the refusal to start in
 * plain HTTP unless told to, and the Consul-compatible API over HTTPS with
 * the npm consul client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Consul from 'consul';
import { Agent as UndiciAgent, request } from 'undici';
import { createClusterCa, issueCertificate, writeTlsFiles, type TlsPair } from '../../common/tls/index.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { AgentSession } from '../../core-scheduler/src/agent/session.js';
import type { TLSSocket } from 'node:tls';
import { registerOverTls } from '../harness/tls-agent.js';
import { agentConfigSchema, startAgent } from '../../core-scheduler/src/index.js';
import { startServices } from '../../core-scheduler/src/index.js';
import { startDiscovery } from '../../discovery/src/index.js';
import type { RunningDiscovery } from '../../discovery/src/daemon.js';
import { startTestMaster, type TestMaster } from '../harness/master.js';

const ROOT = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

let dir: string;
let ca: TlsPair;
let caFile: string;
let other: TlsPair;
let master: TestMaster;
const files = (name: string): { ca: string; cert: string; key: string } => ({ ca: caFile, cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'corral-tls-daemons-'));
  ca = await createClusterCa({ commonName: 'test cluster CA', validDays: 30 });
  other = await createClusterCa({ commonName: 'another CA', validDays: 30 });
  caFile = writeTlsFiles(dir, 'ca', ca).cert;
  const names = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };
  writeTlsFiles(dir, 'master', await issueCertificate(ca, { commonName: 'master', ...names, usage: 'server', validDays: 10 }));
  writeTlsFiles(dir, 'agent', await issueCertificate(ca, { commonName: 'agent-1', ...names, usage: 'both', validDays: 10 }));
  writeTlsFiles(dir, 'discovery', await issueCertificate(ca, { commonName: 'discovery', ...names, usage: 'both', validDays: 10 }));
  master = await startTestMaster({ tls: files('master') }, join(dir, 'master-work'));
});

afterAll(async () => {
  await master?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const pem = (p: TlsPair): { cert: string; key: string } => ({ cert: p.certPem, key: p.keyPem });

/** The agent protocol's first call, as an agent makes it (no reconnect: the first refusal is the answer). */
const registerAs = (tls: { ca: string; cert?: string; key?: string }): Promise<string> => registerOverTls(master.url, tls);

describe('master over HTTPS', () => {
  it('serves HTTPS only: its URL is https and a client trusting the cluster CA is answered', async () => {
    expect(master.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const dispatcher = new UndiciAgent({ connect: { ca: ca.certPem } });
    try {
      const res = await request(`${master.url}/health`, { dispatcher });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ healthy: true });
    } finally {
      await dispatcher.close();
    }
  });

  it('a plain HTTP request on the TLS port is answered in plain HTTP, saying to use https and the CA', async () => {
    const res = await request(`${master.url.replace('https:', 'http:')}/health`);
    expect(res.statusCode).toBe(400);
    expect(await res.body.json()).toEqual({
      code: 'MALFORMED_REQUEST',
      message: "this port serves HTTPS: use an https:// URL and trust the cluster's CA (--tls-ca, CORRAL_TLS_CA or tls.ca; curl --cacert)",
    });
  });

  it('a client trusting another CA is refused, with an error naming the CA setting', async () => {
    const ops = new OperatorClient({ master: master.url, tls: { ca: other.certPem } });
    try {
      await expect(ops.call('GET_HEALTH')).rejects.toMatchObject({
        code: 'FAILED_PRECONDITION',
        message: expect.stringMatching(
          /^TLS with https:\/\/127\.0\.0\.1:\d+ failed: its certificate is not signed by the CA this client trusts \(SELF_SIGNED_CERT_IN_CHAIN.*give the cluster's CA certificate \(tls\.ca, --tls-ca or CORRAL_TLS_CA\)/,
        ),
      });
    } finally {
      await ops.close();
    }
  });

  it('an agent with a client certificate of the cluster CA registers (mutual TLS) and serves its own API over HTTPS', async () => {
    const config = agentConfigSchema.parse({ master: master.url, host: '127.0.0.1', port: 0, noAuth: true, workDir: join(dir, 'agent-work'), resources: 'cpus:1;mem:512', tls: files('agent') });
    const agent = await startAgent(config, []);
    try {
      expect(agent.url).toMatch(/^https:/);
      const ops = new OperatorClient({ master: master.url, tls: { ca: ca.certPem } });
      try {
        const agents = (await ops.call<{ get_agents: { agents: Array<{ agent_info: { id: { value: string } }; active: boolean }> } }>('GET_AGENTS')).get_agents.agents;
        expect(agents.map((a) => [a.agent_info.id.value, a.active])).toContainEqual([agent.agent.id!, true]);
      } finally {
        await ops.close();
      }
    } finally {
      await agent.close();
    }
  });

  it('the agent channel runs over TLS (wss) with the client certificate (the refusals below come through it too)', async () => {
    const good = await issueCertificate(ca, { commonName: 'agent-wss', usage: 'client', validDays: 5 });
    const tls = { ca: ca.certPem, ...pem(good) };
    const resumed: boolean[] = [];
    const connectOnce = async (agentId?: string): Promise<string> => {
      const session = new AgentSession({
        master: master.url,
        agentId,
        info: { hostname: 'wss', resources: [], attributes: [] },
        tls,
        reconnect: false,
        onChannelSocket: (socket) => resumed.push((socket as TLSSocket).isSessionReused()),
        onEvent: () => undefined,
        snapshot: () => ({ tasks: [], frameworks: [] }),
      });
      try {
        const id = await session.start();
        expect(session.transport).toBe('channel');
        expect(master.master.agents.get(id)?.status).toBe('connected');
        await session.sendUpdates([]);
        return id;
      } finally {
        await session.stop();
      }
    };
    const id = await connectOnce();
    // Coming back with the same configuration resumes the TLS session, and the master still knows the certificate.
    expect(await connectOnce(id)).toBe(id);
    expect(resumed).toEqual([false, true]);
  });

  it('with authentication on, the certificate CN is the agent principal: alone it authenticates, with Basic credentials both must agree', async () => {
    const security = join(dir, 'security.yaml');
    writeFileSync(
      security,
      JSON.stringify({
        credentials: [
          { principal: 'agent-1', secret: 'secret-1' },
          { principal: 'agent-2', secret: 'secret-2' },
        ],
        acls: { agents: ['agent-1', 'agent-2'] },
      }),
    );
    const secured = await startTestMaster({ noAuth: false, credentials: security, tls: files('master') }, join(dir, 'auth-master-work'));
    const agentCert = { ca: ca.certPem, cert: readFileSync(files('agent').cert, 'utf8'), key: readFileSync(files('agent').key, 'utf8') };
    const session = (creds: { principal?: string; secret?: string; agentId?: string }, hostname: string) =>
      new AgentSession({
        master: secured.url,
        info: { hostname, resources: [], attributes: [] },
        tls: agentCert,
        reconnect: false,
        onEvent: () => undefined,
        snapshot: () => ({ tasks: [], frameworks: [] }),
        ...creds,
      });
    try {
      const byCert = session({}, 'by-cert');
      const id = await byCert.start();
      expect(secured.master.agents.get(id)?.principal).toBe('agent-1');
      await byCert.stop();
      // Re-registering the same agent with credentials that agree with its certificate.
      const matching = session({ principal: 'agent-1', secret: 'secret-1', agentId: id }, 'by-cert');
      expect(await matching.start()).toBe(id);
      await matching.stop();
      const other = session({ principal: 'agent-2', secret: 'secret-2' }, 'by-other');
      await expect(other.start()).rejects.toMatchObject({
        status: 403,
        message: 'the client certificate is for "agent-1" but the credentials are for principal "agent-2"; an agent\'s certificate CN must be its principal',
      });
      await other.stop().catch(() => undefined);
    } finally {
      await secured.dispose();
    }
  });

  it('an agent without a client certificate is refused by the agent API, told what to configure', async () => {
    await expect(registerAs({ ca: ca.certPem })).rejects.toMatchObject({
      status: 401,
      message: "the agent API requires mutual TLS: the agent must present a client certificate issued by the cluster's CA (the agent's tls.cert and tls.key)",
    });
  });

  it('an agent with a certificate of another CA is refused at the connection, told why', async () => {
    const foreign = await issueCertificate(other, { commonName: 'agent-x', usage: 'client', validDays: 5 });
    await expect(registerAs({ ca: ca.certPem, ...pem(foreign) })).rejects.toMatchObject({
      status: 401,
      message: `client certificate refused: "agent-x" was not issued by this cluster's CA (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
    });
  });

  it('an expired client certificate is refused at the connection, with its expiry date in the error', async () => {
    const notBefore = new Date(Date.now() - 3 * 86_400_000);
    const expired = await issueCertificate(ca, { commonName: 'agent-old', usage: 'client', validDays: 1, notBefore });
    const err = await registerAs({ ca: ca.certPem, ...pem(expired) }).then(
      () => undefined,
      (e: unknown) => e as { status?: number; message: string },
    );
    expect(err?.status).toBe(401);
    expect(err?.message).toMatch(/^client certificate refused: "agent-old" expired on \d{4}-\d\d-\d\dT[\d:.]+Z \(CERT_HAS_EXPIRED\); issue a new one$/);
    expect(err?.message).toContain(new Date(notBefore.getTime() + 86_400_000).toISOString().slice(0, 16));
    // The refused connection did not register anything.
    expect([...master.master.agents.values()].some((a) => a.info.hostname === 'probe')).toBe(false);
  });
});

describe('plain HTTP only when asked for', () => {
  it('the master command without TLS and without --insecure refuses to start, naming both', async () => {
    const work = join(dir, 'refused-master');
    const out = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/corral.ts'), 'master', '--port', '0', '--no-auth', '--work-dir', work], { cwd: ROOT, timeout: 60_000 }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(out?.code).not.toBe(0);
    expect(out?.stderr).toContain('the master will not serve plain HTTP unless told to');
    expect(out?.stderr).toMatch(/tls\.cert, tls\.key and tls\.ca.*CORRAL_MASTER_TLS__CERT.*--tls-cert\/--tls-key\/--tls-ca.*--insecure \(insecure: true, CORRAL_MASTER_INSECURE=true\)/s);
  });

  it('the other daemons refuse too (in-process start), and a certificate with --insecure is refused as contradictory', async () => {
    await expect(startServices({ noAuth: true, port: 0, workDir: join(dir, 'refused-services') })).rejects.toThrow(/the service framework will not serve plain HTTP unless told to.*--insecure/);
    await expect(startDiscovery({ workDir: join(dir, 'refused-discovery'), dns: { port: 0, workers: 0 }, http: { port: 0 } })).rejects.toThrow(
      /the discovery daemon will not serve plain HTTP unless told to.*--insecure/,
    );
    await expect(startServices({ noAuth: true, insecure: true, tls: files('discovery'), port: 0, workDir: join(dir, 'both-services') })).rejects.toThrow(
      'the service framework: both a TLS certificate (tls.cert) and --insecure (insecure: true) are given; choose one',
    );
  });
});

describe('discovery over HTTPS', () => {
  let discovery: RunningDiscovery;
  beforeAll(async () => {
    discovery = await startDiscovery({
      workDir: join(dir, 'discovery'),
      store: { backend: 'embedded', path: join(dir, 'discovery', 'kv.db'), sync: 'normal' },
      nodeName: 'tls-node',
      dns: { port: 0, workers: 0 },
      http: { host: '127.0.0.1', port: 0 },
      master: { url: master.url },
      tls: files('discovery'),
    });
  });
  afterAll(async () => {
    await discovery?.close();
  });

  it('the npm consul client (secure, with the cluster CA) reads and writes KV and the catalog', async () => {
    expect(discovery.httpUrl).toMatch(/^https:/);
    // `ca` is passed on to https.request (the client's documented option; its typings omit it).
    const consul = new Consul({ host: '127.0.0.1', port: discovery.httpPort, secure: true, ca: [ca.certPem] } as ConstructorParameters<typeof Consul>[0]);
    expect(await consul.kv.set('tls/greeting', 'hello over TLS')).toBe(true);
    expect(await consul.kv.get('tls/greeting')).toMatchObject({ Key: 'tls/greeting', Value: 'hello over TLS' });
    await consul.agent.service.register({ name: 'tls-web', port: 8080, address: '127.0.0.2' });
    const nodes = await consul.catalog.service.nodes('tls-web');
    expect(nodes.map((n: { ServiceAddress: string; ServicePort: number }) => [n.ServiceAddress, n.ServicePort])).toEqual([['127.0.0.2', 8080]]);
  });

  it('a consul client without the CA is refused (the daemon is not trusted)', async () => {
    const consul = new Consul({ host: '127.0.0.1', port: discovery.httpPort, secure: true });
    await expect(consul.kv.get('tls/greeting')).rejects.toThrow(/self[- ]signed certificate in certificate chain/);
  });

  it('follows the master over HTTPS with the same CA', async () => {
    const dispatcher = new UndiciAgent({ connect: { ca: ca.certPem } });
    try {
      for (let i = 0; ; i++) {
        const res = await request(`${discovery.httpUrl}/v1/corral/status`, { dispatcher });
        const status = (await res.body.json()) as { master?: { connected?: boolean } };
        if (status.master?.connected) break;
        if (i > 300) throw new Error(`discovery never connected to the master: ${JSON.stringify(status)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await dispatcher.close();
    }
  });
});
