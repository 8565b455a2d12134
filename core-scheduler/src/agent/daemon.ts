/**
 * Starting an agent process: configuration, host resources, credentials, the
 * containerizers, the agent API and sandbox GC.
 */
import { mkdirSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { CorralError } from '../../../contracts/errors.js';
import { logger } from '../../../common/log.js';
import { HttpServer } from '../../../common/http/server.js';
import { Metrics } from '../../../common/metrics.js';
import { Authority, loadSecurity, ownCredential } from '../master/auth.js';
import { Agent } from './agent.js';
import { mountAgentApi } from './api.js';
import { collectSandboxes } from './gc.js';
import { agentResources, parseAttributes, type AgentResources } from './host-resources.js';
import type { AgentConfig } from './config.js';
import type { Containerizer } from '../../../contracts/containerizer.js';
import { daemonTls } from '../../../common/tls/config.js';

interface RunningAgent {
  agent: Agent;
  url: string;
  close(): Promise<void>;
}

/** Everything the agent needs from the host's security file, if one is given. */
function security(config: AgentConfig): { credential?: { principal: string; secret: string }; api: Authority | undefined } {
  const sec = config.credentials ? loadSecurity(config.credentials) : undefined;
  let credential = config.principal && config.secret ? { principal: config.principal, secret: config.secret } : undefined;
  if (!credential && sec) {
    // Its own credential is the one in plain text; hashes in the file only verify operators for the agent API.
    const agents = sec.acls.agents;
    credential = ownCredential(sec, (p) => agents === 'ANY' || agents.includes(p));
  }
  if (config.noAuth) return { ...(credential ? { credential } : {}), api: undefined };
  if (!sec) throw new CorralError('INVALID_ARGUMENT', 'the agent API needs a security file (--credentials FILE) to check operators, or --no-auth for local use');
  return { ...(credential ? { credential } : {}), api: new Authority(sec) };
}

export async function startAgent(config: AgentConfig, containerizers: Containerizer[], own: AgentResources = agentResources(config.workDir, config.resources)): Promise<RunningAgent> {
  mkdirSync(config.workDir, { recursive: true });
  const { credential, api } = security(config);
  // Its certificate serves the agent API and is its client certificate at the master.
  const tls = daemonTls(config, { daemon: 'the agent', envPrefix: 'CORRAL_AGENT_' });
  const resources = own.advertised;
  // Trusted, as Mesos trusts --resources, but said at start so the hardware's limits stay visible.
  for (const o of own.overcommitted)
    logger('agent').warn(o, `the agent advertises more ${o.resource} than this host has (${o.advertised} advertised, ${o.physical} physical); tasks are checked against the advertised figure`);
  const attributes = parseAttributes(config.attributes);
  const metrics = new Metrics('corral_agent');
  const server = new HttpServer({ name: 'agent', metrics, limits: config.limits, limitsHint: { configPath: 'limits', envPrefix: 'CORRAL_AGENT_' }, tls: tls && { material: tls } });
  const listening = await server.listen({ host: config.host, port: config.port });
  if (config.apiSocket) await server.listen({ socketPath: config.apiSocket });
  const hostname = config.advertiseHost ?? (config.host === '0.0.0.0' ? osHostname() : config.host);
  const url = `${tls ? 'https' : 'http'}://${hostname}:${server.port}`;
  let agent: Agent;
  try {
    agent = await Agent.start({ config, resources, attributes, url, hostname, ...(credential ? { credential } : {}), ...(tls && { tls }), containerizers, metrics });
  } catch (err) {
    await server.close();
    throw err;
  }
  mountAgentApi(server, agent, api, own);
  metrics.serve(server);
  const gc = setInterval(() => {
    try {
      collectSandboxes({
        workDir: config.workDir,
        maxAgeMs: config.gc.maxAgeMs,
        diskHighWatermark: config.gc.diskHighWatermark,
        inUse: () => new Set(agent.tasks.all().map((t) => t.container.sandbox)),
        onRemoved: (sandbox) => {
          for (const [k, t] of agent.tasks.completed) if (t.container.sandbox === sandbox) agent.tasks.completed.delete(k);
        },
      });
    } catch (err) {
      agent.log.warn({ err: (err as Error).message }, 'sandbox GC failed');
    }
  }, config.gc.intervalMs);
  gc.unref();
  agent.log.info({ url: listening, resources: resources.toString() }, 'agent API listening');
  return {
    agent,
    url,
    async close() {
      clearInterval(gc);
      await agent.stop();
      await server.close();
    },
  };
}
