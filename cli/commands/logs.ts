/**
 * corral logs TASK [-f] — a task's stdout/stderr, from the agent it runs on.
 */
import type { Command } from 'commander';
import { request } from 'undici';
import { CorralError } from '../../contracts/errors.js';
import { basicAuthHeader } from '../../contracts/client/auth-header.js';
import type { V1AgentSummary, V1Task } from '../../contracts/v1/v1.js';
import { globals, identity, operatorClient } from '../context.js';
import { intOption } from '../parse.js';

export function registerLogs(program: Command): void {
  program
    .command('logs <task-id>')
    .description("print a task's output (stdout, or --stderr), following it with -f")
    .option('-f, --follow', 'keep printing as the task writes')
    .option('--stderr', 'stderr instead of stdout')
    .option('--framework <id>', 'the framework, when several have a task of this name')
    .option('--tail <bytes>', 'start this many bytes before the end', intOption('--tail', 0, 1 << 30), 65536)
    .action(async (taskId: string, o: { follow?: boolean; stderr?: boolean; framework?: string; tail: number }, cmd: Command) => {
      const ops = operatorClient(cmd);
      let task: V1Task | undefined;
      let agentUrl: string | undefined;
      try {
        const t = (await ops.call<{ get_tasks: { tasks: V1Task[]; unreachable_tasks: V1Task[]; completed_tasks: V1Task[] } }>('GET_TASKS')).get_tasks;
        const all = [...t.tasks, ...t.unreachable_tasks, ...t.completed_tasks].filter((x) => x.task_id.value === taskId && (!o.framework || x.framework_id.value === o.framework));
        const frameworks = new Set(all.map((x) => x.framework_id.value));
        if (frameworks.size > 1) throw new CorralError('INVALID_ARGUMENT', `several frameworks have a task ${taskId}: ${[...frameworks].join(', ')}; pass --framework`);
        task = all.at(-1);
        if (!task) throw new CorralError('NOT_FOUND', `no task ${taskId} is known to the master`);
        const agents = (await ops.call<{ get_agents: { agents: V1AgentSummary[] } }>('GET_AGENTS')).get_agents.agents;
        agentUrl = agents.find((a) => a.agent_info.id.value === task!.agent_id.value)?.agent_info.url;
        if (!agentUrl) throw new CorralError('UNAVAILABLE', `agent ${task.agent_id.value} of task ${taskId} is not connected (or does not serve logs)`);
      } finally {
        await ops.close();
      }
      const id = identity(globals(cmd));
      const q = new URLSearchParams({ task_id: taskId, framework_id: task.framework_id.value, stream: o.stderr ? 'stderr' : 'stdout', offset: String(-o.tail), follow: String(Boolean(o.follow)) });
      const res = await request(`${agentUrl}/api/v1/logs?${q}`, { headers: id.principal && id.secret ? { authorization: basicAuthHeader(id.principal, id.secret) } : {}, bodyTimeout: 0 }).catch(
        (err: Error) => {
          throw new CorralError('UNAVAILABLE', `cannot reach agent ${agentUrl}: ${err.message}`);
        },
      );
      if (res.statusCode !== 200) {
        const text = await res.body.text();
        let message = text;
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? text;
        } catch {
          // plain text
        }
        throw new CorralError('FAILED_PRECONDITION', `agent ${agentUrl}: ${message}`);
      }
      for await (const chunk of res.body) process.stdout.write(chunk as Buffer);
    });
}
