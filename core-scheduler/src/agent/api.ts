/**
 * The agent's own HTTP API: health and metrics, the live containers (the CNI
 * daemon reconciles its IPs against them), the tasks here, the resources it
 * advertises beside the hardware's, and task logs (tail and follow) for
 * `corral logs`. Everything but health, metrics and the container list needs
 * an operator credential unless authentication is off.
 */
import { openSync, readSync, closeSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../common/http/server.js';
import type { Authority } from '../master/auth.js';
import type { Agent } from './agent.js';
import type { TaskCheckpoint } from './checkpoint.js';
import type { AgentResources } from './host-resources.js';
import { isTerminal } from '../../../contracts/v1/v1.js';

const MAX_CHUNK = 1024 * 1024;

export function mountAgentApi(server: HttpServer, agent: Agent, auth: Authority | undefined, resources: AgentResources): void {
  const guard = async (ctx: RequestContext): Promise<void> => {
    if (!auth) return;
    // The agent's own API: operators only (the agent's file holds their secrets hashed).
    auth.authorizeOperator(await auth.authenticate(ctx.req));
  };
  server.route('GET', '/health', () => ({ healthy: true, agent_id: agent.id, connected: agent.connected }));
  server.route('GET', '/api/v1/containers', () => ({ containers: agent.tasks.liveContainers() }));
  server.route('GET', '/api/v1/tasks', async (ctx) => {
    await guard(ctx);
    const view = (t: TaskCheckpoint): Record<string, unknown> => ({
      framework_id: t.frameworkId,
      task_id: t.task.task_id.value,
      name: t.task.name,
      state: t.state,
      containerizer: t.containerizer,
      container_id: t.container.containerId,
      sandbox: t.container.sandbox,
    });
    return { tasks: agent.tasks.all().map(view), completed_tasks: [...agent.tasks.completed.values()].map(view) };
  });
  // What the agent advertises (tasks are checked against it) and where that exceeds the host: overcommit stays visible.
  server.route('GET', '/api/v1/resources', async (ctx) => {
    await guard(ctx);
    return {
      advertised: resources.advertised.toString(),
      advertised_resources: resources.advertised.toV1(),
      physical: { cpus: resources.physical.cpus, mem: resources.physical.memMb, disk: resources.physical.diskMb },
      overcommitted: resources.overcommitted,
      warnings: resources.overcommitted.map((o) => `advertises ${o.advertised} ${o.resource}; this host has ${o.physical}`),
    };
  });
  server.route('GET', '/api/v1/logs', (ctx) => logs(ctx, agent, guard));
}

function findTask(agent: Agent, frameworkId: string | null, taskId: string): TaskCheckpoint {
  const all = [...agent.tasks.all(), ...agent.tasks.completed.values()].filter((t) => t.task.task_id.value === taskId && (!frameworkId || t.frameworkId === frameworkId));
  if (all.length === 0) throw new CorralError('NOT_FOUND', `task ${taskId} is not on this agent (or its sandbox was garbage-collected)`);
  if (all.length > 1) throw new CorralError('INVALID_ARGUMENT', `several frameworks have a task ${taskId}; give framework_id`);
  return all[0]!;
}

async function logs(ctx: RequestContext, agent: Agent, guard: (ctx: RequestContext) => Promise<void>): Promise<void> {
  await guard(ctx);
  const taskId = ctx.query.get('task_id');
  if (!taskId) throw new CorralError('INVALID_ARGUMENT', 'task_id is required');
  const stream = ctx.query.get('stream') ?? 'stdout';
  if (stream !== 'stdout' && stream !== 'stderr') throw new CorralError('INVALID_ARGUMENT', 'stream must be stdout or stderr');
  const offsetText = ctx.query.get('offset') ?? '-65536';
  if (!/^-?\d+$/.test(offsetText)) throw new CorralError('INVALID_ARGUMENT', 'offset must be an integer (negative: from the end)');
  const follow = ctx.query.get('follow') === 'true';
  const t = findTask(agent, ctx.query.get('framework_id'), taskId);
  // Following is long-lived: it counts against the server's stream caps (429/503 over them, before anything is sent).
  if (follow) ctx.admit('stream');
  const file = join(t.container.sandbox, stream);
  const size = existsSync(file) ? statSync(file).size : 0;
  let pos = Number(offsetText) < 0 ? Math.max(0, size + Number(offsetText)) : Math.min(size, Number(offsetText));
  const res = ctx.res;
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('X-Corral-Log-Offset', String(pos));
  const readFrom = (): number => {
    if (!existsSync(file)) return 0;
    const now = statSync(file).size;
    if (now < pos) pos = 0; // rotated: the current file starts over
    if (now === pos) return 0;
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(Math.min(MAX_CHUNK, now - pos));
      const n = readSync(fd, buf, 0, buf.length, pos);
      pos += n;
      if (n) res.write(buf.subarray(0, n));
      return n;
    } finally {
      closeSync(fd);
    }
  };
  while (readFrom() === MAX_CHUNK) {
    // keep reading big files in chunks
  }
  if (!follow) {
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    let quietSinceEnd = 0;
    const timer = setInterval(() => {
      const n = readFrom();
      const live = agent.tasks.all().find((x) => x === t || (x.task.task_id.value === taskId && x.frameworkId === t.frameworkId));
      const ended = !live || isTerminal(live.state);
      quietSinceEnd = ended && n === 0 ? quietSinceEnd + 1 : 0;
      if (quietSinceEnd >= 4) done();
    }, 250);
    const done = (): void => {
      clearInterval(timer);
      res.end();
      resolve();
    };
    ctx.req.on('close', done);
  });
}
