/**
 * An agent's first call over TLS, as an agent makes it (REGISTER, no
 * reconnect: the first refusal is the answer), for tests of what a master
 * accepts at the connection.
 */
import { AgentSession } from '../../core-scheduler/src/agent/session.js';

export async function registerOverTls(master: string, tls: { ca: string; cert?: string; key?: string }): Promise<string> {
  const session = new AgentSession({
    master,
    info: { hostname: 'probe', resources: [], attributes: [] },
    tls,
    reconnect: false,
    onEvent: () => undefined,
    snapshot: () => ({ tasks: [], frameworks: [] }),
  });
  try {
    return await session.start();
  } finally {
    await session.stop().catch(() => undefined);
  }
}
