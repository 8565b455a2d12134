/**
 * The CNI-only lab's cluster services, run inside the services namespace: a
 * master and one simulated agent per lab host whose hostname is that host's
 * underlay address, so the node daemons build their BGP mesh from the
 * master's agent list exactly as in production.
 *
 * Secure unless the lab is insecure: the master serves HTTPS with the
 * services machine's certificate and checks every call against the
 * machine's security file (hashes of every principal, lab/security.ts); the
 * simulated agents register with the credential of `agent-control` (the one
 * secret that file holds in plain text) and present its certificate (mutual
 * TLS: the master takes an agent's certificate CN for its principal). The
 * hosts' CNI daemons read the agent list as their own `cni-hN` (acls.view).
 *
 * Its settings come from DIR/lab-services.json, written by the lab: without
 * it the services refuse to start rather than fall back to plain HTTP.
 */
import { join } from 'node:path';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { masterConfigSchema, startMaster, SimAgent, loadSecurity, ownCredential } from '../core-scheduler/src/index.js';
import { nodeTlsFiles } from '../provision/src/index.js';
import { loadTls } from '../common/tls/index.js';
import { tlsAgent } from '../contracts/client/tls.js';
import { CorralError } from '../contracts/errors.js';
import { logger } from '../common/log.js';

interface LabServicesOptions {
  host: string;
  port: number;
  dir: string;
  agents: string[];
}

/** How the lab services run: with the services machine's TLS directory and security file, or (an insecure lab) plain. */
export type LabServicesSettings = { tlsDir: string; security: string } | { insecure: true };

const settingsFile = (dir: string): string => join(dir, 'lab-services.json');

/** Written by the lab before it starts `corral lab services --dir DIR`. */
export function writeLabServicesSettings(dir: string, s: LabServicesSettings): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(settingsFile(dir), JSON.stringify(s, null, 2), { mode: 0o600 });
}

function readSettings(dir: string): LabServicesSettings {
  const file = settingsFile(dir);
  if (!existsSync(file)) throw new CorralError('FAILED_PRECONDITION', `${file} is missing: the lab writes it (the services machine's TLS directory and security file, or insecure)`);
  return JSON.parse(readFileSync(file, 'utf8')) as LabServicesSettings;
}

export async function runLabServices(o: LabServicesOptions): Promise<{ close(): Promise<void> }> {
  const log = logger('lab-services');
  mkdirSync(o.dir, { recursive: true });
  const settings = readSettings(o.dir);
  const secure = 'tlsDir' in settings ? settings : undefined;
  const master = await startMaster(
    masterConfigSchema.parse({
      host: o.host,
      port: o.port,
      workDir: join(o.dir, 'master'),
      ...(secure ? { credentials: secure.security, tls: nodeTlsFiles(secure.tlsDir, 'master') } : { noAuth: true, insecure: true }),
      store: { backend: 'embedded', path: join(o.dir, 'master', 'registry.db'), sync: 'normal' },
      agents: { heartbeatIntervalMs: 1000, maxMissedHeartbeats: 3, unreachableTimeoutMs: 10_000, reregisterTimeoutMs: 60_000 },
    }),
  );
  let credential: { principal: string; secret: string } | undefined;
  let dispatchers: ReturnType<typeof tlsAgent>[] = [];
  let agentTls: ReturnType<typeof loadTls> | undefined;
  if (secure) {
    const sec = loadSecurity(secure.security);
    const allowed = sec.acls.agents;
    credential = ownCredential(sec, (p) => allowed === 'ANY' || allowed.includes(p));
    if (!credential) throw new CorralError('INVALID_ARGUMENT', `${secure.security} holds no agent credential in plain text (a principal of acls.agents)`);
    // The agent certificate (CN = the principal) is the client certificate at the master; one dispatcher for calls, one for streams.
    // The agent channel's connections present it too (the dispatchers are the POST transport's).
    agentTls = loadTls(nodeTlsFiles(secure.tlsDir, 'agent'), 'lab services: agent tls');
    dispatchers = [tlsAgent(agentTls), tlsAgent(agentTls)];
  }
  const agents = o.agents.map(
    (ip) =>
      new SimAgent({
        master: master.url,
        hostname: ip,
        resources: 'cpus:4;mem:8192;disk:20000;ports:[31000-32000]',
        ...(credential ? { principal: credential.principal, secret: credential.secret } : {}),
        ...(dispatchers.length ? { dispatcher: dispatchers[0]!, streamDispatcher: dispatchers[1]! } : {}),
        ...(agentTls ? { tls: agentTls } : {}),
      }),
  );
  for (const a of agents) await a.start();
  log.info({ url: master.url, agents: o.agents, principal: credential?.principal }, 'lab services up');
  return {
    async close() {
      for (const a of agents) await a.stop();
      await master.close();
      for (const d of dispatchers) await d.close();
    },
  };
}
