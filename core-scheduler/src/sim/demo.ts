/**
 * The demo cluster `corral up` runs until real agents join: simulated agents
 * and two framework schedulers in weighted roles, so weighted DRF is visible.
 * The frameworks are ordinary v1 clients: each launches tasks one by one
 * from its offers until it reaches its target.
 */
import { SimAgent } from './sim-agent.js';
import { SchedulerClient, isUpdate } from '../../../contracts/client/scheduler-client.js';
import { Resources } from '../resources/resources.js';
import { parseResources } from '../resources/parse.js';
import type { SchedulerEvent } from '../../../contracts/v1/v1.js';

interface DemoCredentials {
  framework?: { principal: string; secret: string };
  agent?: { principal: string; secret: string };
}

interface DemoOptions {
  master: string;
  agents: number;
  agentResources: string;
  credentials: DemoCredentials;
}

interface DemoFramework {
  name: string;
  role: string;
  task: string;
  target: number;
}

const DEMO_FRAMEWORKS: DemoFramework[] = [
  { name: 'demo-web', role: 'web', task: 'cpus:1;mem:512', target: 100 },
  { name: 'demo-batch', role: 'batch', task: 'cpus:1;mem:512', target: 100 },
];

export class Demo {
  readonly agents: SimAgent[] = [];
  readonly frameworks: SchedulerClient[] = [];

  constructor(private readonly opts: DemoOptions) {}

  async start(): Promise<void> {
    for (let i = 1; i <= this.opts.agents; i++) {
      const a = new SimAgent({
        master: this.opts.master,
        hostname: `sim-${i}`,
        resources: this.opts.agentResources,
        attributes: [{ name: 'rack', type: 'TEXT', text: { value: `r${((i - 1) % 2) + 1}` } }],
        principal: this.opts.credentials.agent?.principal,
        secret: this.opts.credentials.agent?.secret,
      });
      await a.start();
      this.agents.push(a);
    }
    for (const spec of DEMO_FRAMEWORKS) this.frameworks.push(await this.framework(spec));
  }

  private async framework(spec: DemoFramework): Promise<SchedulerClient> {
    const need = parseResources(spec.task);
    let launched = 0;
    const client = new SchedulerClient({
      master: this.opts.master,
      principal: this.opts.credentials.framework?.principal,
      secret: this.opts.credentials.framework?.secret,
      framework: {
        // The agents' default user: no run_tasks rule needed (root would need one).
        user: '',
        name: spec.name,
        roles: [spec.role],
        capabilities: [{ type: 'MULTI_ROLE' }],
        failover_timeout: 3600,
        ...(this.opts.credentials.framework ? { principal: this.opts.credentials.framework.principal } : {}),
      },
      onEvent: (e: SchedulerEvent, c) => {
        if (e.type === 'OFFERS') {
          for (const offer of e.offers.offers) {
            // One task per offer, the rest goes back at once: the allocator re-decides by DRF after every task.
            if (launched < spec.target && Resources.fromV1(offer.resources).contains(need)) {
              const id = `${spec.name}-${++launched}`;
              void c
                .accept(
                  [offer.id.value],
                  [
                    {
                      type: 'LAUNCH',
                      launch: {
                        task_infos: [
                          {
                            name: id,
                            task_id: { value: id },
                            agent_id: offer.agent_id,
                            resources: need.toV1().map((r) => ({ ...r, allocation_info: { role: spec.role } })),
                            command: { value: 'sleep infinity' },
                          },
                        ],
                      },
                    },
                  ],
                  0,
                )
                .catch(() => undefined);
            } else {
              void c.decline([offer.id.value], 30).catch(() => undefined);
            }
          }
        } else if (isUpdate(e) && e.update.status.uuid) {
          void c.acknowledge(e.update.status).catch(() => undefined);
        }
      },
    });
    await client.subscribe();
    return client;
  }

  async stop(): Promise<void> {
    for (const f of this.frameworks) await f.close().catch(() => undefined);
    for (const a of this.agents) await a.stop().catch(() => undefined);
  }
}
