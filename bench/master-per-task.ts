/**
 * The master's own cost per task, without HTTP or sockets: a master in this
 * process is driven through the placement benchmark's calls — 10,000 agents
 * register, a framework ACCEPTs one offer per agent with 10 LAUNCHes in
 * ACCEPT_BATCH calls of 64, every agent reports TASK_RUNNING in one UPDATE,
 * the framework acknowledges in ACKNOWLEDGE_BATCH calls — with each call's
 * body parsed from JSON, completed and checked as the master's HTTP layer
 * does, and each event the master sends encoded as RecordIO, as over the
 * wire. The bodies are those corral's own clients send to this master: task
 * defaults and implied task fields in the ACCEPT_BATCH, acknowledgements
 * grouped by agent; and the framework's stream carries update batches, as
 * the scheduler client asks. `--plain` does without these shorthands (full
 * tasks, flat acknowledgements, one UPDATE record a task), to measure what
 * they save. It prints CPU per
 * task for each step, the bytes per task of each step's calls, and the heap
 * the master keeps per task, the figure that decides how much every
 * young-generation collection copies. Compare the CPU with the master's
 * share in `placement.js` to see what node:http and the sockets add.
 *
 * Usage: node dist/bench/master-per-task.js [--agents 10000] [--cpus 10] [--plain] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { configureLogging } from '../common/log.js';
import { openStore } from '../common/store/json.js';
import { encodeRecord } from '../contracts/recordio.js';
import { randomUuidBase64 } from '../common/uuid.js';
import { Registry } from '../core-scheduler/src/master/registry.js';
import { Authority } from '../core-scheduler/src/master/auth.js';
import { Master, realClock } from '../core-scheduler/src/master/master.js';
import { MasterShell, type Outbox } from '../core-scheduler/src/master/shell.js';
import { masterConfigSchema } from '../core-scheduler/src/master/config.js';
import { isQuickAgentCall, isQuickSchedulerCall } from '../contracts/v1/v1-fast.js';
import { parseResources } from '../core-scheduler/src/resources/parse.js';
import { AGENT_CAPABILITIES, agentUpdateCall, groupAcknowledgementsByAgent, type AgentEvent, type SchedulerEvent, type StatusUpdateGroup, type V1Offer } from '../contracts/v1/v1.js';
import type { V1Accept, V1AgentAcknowledgements } from '../contracts/v1/v1-schema.js';
import { acceptBatchBody } from '../contracts/v1/task-defaults.js';
import { applyAcceptBatchDefaults } from '../core-scheduler/src/master/http/accept-batch-defaults.js';
import { batchUpdateEvents } from '../contracts/v1/update-batch.js';
import { flag, jsonOutput, printFigures, type Figure } from './volume-common.js';

const AGENTS = flag('--agents', 10_000, { whole: true, min: 1 });
const CPUS = flag('--cpus', 10, { whole: true, min: 1 });
const TASKS = AGENTS * CPUS;
const PLAIN = process.argv.includes('--plain');
/** ACCEPTs per ACCEPT_BATCH call, as the scheduler client sends them by default. */
const ACCEPT_BATCH = 64;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * An outbox that encodes what it is given, as a stream would (with `encodeAll`, as the
 * framework's stream turns a burst into records), counts the bytes and hands the events on.
 */
let outboxes = 0;
function encodingOutbox<E>(sink: (e: E) => void, encodeAll: (es: E[]) => unknown[] = (es) => es): Outbox<E> & { bytes: number } {
  const outbox = {
    id: `bench-${++outboxes}`,
    isOpen: true,
    bytes: 0,
    send(e: E) {
      outbox.bytes += encodeRecord(e).length;
      sink(e);
      return true;
    },
    sendAll(es: E[]) {
      outbox.bytes += encodeAll(es).map(encodeRecord).join('').length;
      for (const e of es) sink(e);
      return true;
    },
    close() {},
  };
  return outbox;
}

const cpuMicros = (): number => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

async function main(): Promise<void> {
  configureLogging({ level: 'error' });
  const workDir = mkdtempSync(join(tmpdir(), 'corral-bench-master-'));
  const store = await openStore({ backend: 'embedded', path: join(workDir, 'registry.db') });
  try {
    const registry = new Registry(store);
    const config = masterConfigSchema.parse({ noAuth: true, workDir, log: { level: 'warn' }, agents: { heartbeatIntervalMs: 600_000, unreachableTimeoutMs: 600_000 } });
    const m = new Master(config, new Authority(undefined));
    const shell = new MasterShell(m, registry, realClock, (reason) => {
      throw new Error(reason);
    });
    const snapshot = await registry.load();
    await shell.run((core) => core.recover(snapshot));

    const launches = new Map<string, Extract<AgentEvent, { type: 'LAUNCH' }>>();
    const agentIds: string[] = [];
    const agentResources = parseResources(`cpus:${CPUS};mem:${CPUS * 1024};disk:100000;ports:[31000-32000]`).toV1();
    for (let i = 0; i < AGENTS; i++) {
      const a = await shell.run((core) =>
        core.agentManager.register(
          { agent_info: { hostname: `agent-${i}`, resources: agentResources, attributes: [] }, version: 'bench', capabilities: [...AGENT_CAPABILITIES], tasks: [], frameworks: [] },
          undefined,
        ),
      );
      const conn = shell.open(encodingOutbox<AgentEvent>((e) => e.type === 'LAUNCH' && launches.set(a.id, e)));
      shell.fire((core) => core.agentManager.attach(a, conn));
      agentIds.push(a.id);
    }
    let events: SchedulerEvent[] = [];
    const f = await shell.run((core) => core.frameworkManager.subscribe({ user: 'bench', name: 'master-per-task', failover_timeout: 3600 }, undefined, undefined, undefined));
    // corral's scheduler client asks for update batches; `--plain` streams plain UPDATEs, as to any other framework.
    const frameworkOutbox = encodingOutbox<SchedulerEvent>((e) => events.push(e), PLAIN ? undefined : batchUpdateEvents);
    const fconn = shell.open(frameworkOutbox);
    shell.fire((core) => core.frameworkManager.attach(f, fconn, 'bench-stream'));
    shell.fire((core) => core.offerManager.allocate());
    const offers: V1Offer[] = events.flatMap((e) => (e.type === 'OFFERS' ? e.offers.offers : []));
    if (offers.length !== AGENTS) throw new Error(`expected ${AGENTS} offers, got ${offers.length}`);

    // The call bodies, as the framework and the agents send them (built before the clock starts).
    const taskResources = parseResources('cpus:1;mem:256').toV1();
    let n = 0;
    const acceptBodies: string[] = [];
    for (let i = 0; i < offers.length; i += ACCEPT_BATCH) {
      const accepts: V1Accept[] = offers.slice(i, i + ACCEPT_BATCH).map((o) => {
        const task_infos = Array.from({ length: CPUS }, () => {
          const id = `t${n++}`;
          return { name: id, task_id: { value: id }, agent_id: o.agent_id, resources: taskResources, command: { value: 'sleep 3600' } };
        });
        return { offer_ids: [o.id], operations: [{ type: 'LAUNCH', launch: { task_infos } }], filters: { refuse_seconds: 3600 } };
      });
      acceptBodies.push(JSON.stringify({ type: 'ACCEPT_BATCH', framework_id: { value: f.id }, accept_batch: acceptBatchBody(accepts, { impliedFields: !PLAIN, taskDefaults: !PLAIN }) }));
    }

    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const steps: Array<{ step: string; micros: number; bytes: number }> = [];
    const step = async (name: string, bodies: string[], run: (call: Record<string, unknown>) => Promise<void> | void): Promise<void> => {
      gc();
      const c0 = cpuMicros();
      for (const body of bodies) await run(JSON.parse(body) as Record<string, unknown>);
      steps.push({ step: name, micros: cpuMicros() - c0, bytes: bodies.reduce((sum, b) => sum + Buffer.byteLength(b), 0) });
    };

    events = [];
    await step('ACCEPT_BATCH with LAUNCH → task records, LAUNCH events', acceptBodies, async (call) => {
      applyAcceptBatchDefaults(call);
      if (!isQuickSchedulerCall('ACCEPT_BATCH', call)) throw new Error('ACCEPT_BATCH body not in its plain shape');
      for (const accept of (call as { accept_batch: { accepts: V1Accept[] } }).accept_batch.accepts) await shell.run((core) => core.offerManager.accept(f, accept));
    });
    if (launches.size !== AGENTS) throw new Error(`expected ${AGENTS} launches, got ${launches.size}`);

    const timestamp = Date.now() / 1000;
    const updateBodies = agentIds.map((id) => {
      const statuses = launches.get(id)!.launch.tasks.map((t) => ({ task_id: t.task_id, state: 'TASK_RUNNING' as const, source: 'SOURCE_EXECUTOR' as const, uuid: randomUuidBase64(), timestamp }));
      return JSON.stringify({ ...agentUpdateCall([{ framework_id: { value: f.id }, statuses }], true), agent_id: { value: id } });
    });
    launches.clear();
    events = [];
    const streamBytesBefore = frameworkOutbox.bytes;
    await step('agent UPDATE → UPDATE events to the framework', updateBodies, (call) => {
      if (!isQuickAgentCall('UPDATE', call)) throw new Error('UPDATE body not in its plain shape');
      const { agent_id, update } = call as { agent_id: { value: string }; update: { frameworks: StatusUpdateGroup[] } };
      const a = m.agents.get(agent_id.value)!;
      shell.fire((core) => {
        core.agentManager.seen(a);
        core.taskManager.fromAgent(a, update.frameworks);
      });
    });
    const updateEventBytes = frameworkOutbox.bytes - streamBytesBefore;
    const updates = events.flatMap((e) => (e.type === 'UPDATE' ? [e.update.status] : []));
    if (updates.length !== TASKS) throw new Error(`expected ${TASKS} updates, got ${updates.length}`);

    // The scheduler client sends the acknowledgements of one event-loop turn together; ~60 per call in the placement run.
    const ackBodies: string[] = [];
    for (let i = 0; i < updates.length; i += 60) {
      const acks = updates.slice(i, i + 60).map((st) => ({ agent_id: st.agent_id!, task_id: st.task_id, uuid: st.uuid! }));
      ackBodies.push(
        JSON.stringify({ type: 'ACKNOWLEDGE_BATCH', framework_id: { value: f.id }, acknowledge_batch: PLAIN ? { acknowledgements: acks } : { agents: groupAcknowledgementsByAgent(acks) } }),
      );
    }
    updates.length = 0;
    events = [];
    await step('ACKNOWLEDGE_BATCH → acknowledgements to the agents', ackBodies, async (call) => {
      if (!isQuickSchedulerCall('ACKNOWLEDGE_BATCH', call)) throw new Error('ACKNOWLEDGE_BATCH body not in its plain shape');
      const batch = (call as { acknowledge_batch: { acknowledgements?: Parameters<Master['taskManager']['acknowledge']>[1]; agents?: V1AgentAcknowledgements[] } }).acknowledge_batch;
      shell.fire((core) => core.taskManager.acknowledge(f, batch.acknowledgements ?? [], batch.agents));
    });
    // Forwarded acknowledgements leave in batches after agents.ackBatchMs.
    const c0 = cpuMicros();
    await new Promise((r) => setTimeout(r, config.agents.ackBatchMs + 20));
    steps[steps.length - 1]!.micros += cpuMicros() - c0;

    acceptBodies.length = 0;
    updateBodies.length = 0;
    ackBodies.length = 0;
    events = [];
    gc();
    const keptPerTask = (process.memoryUsage().heapUsed - heapBefore) / TASKS;
    const running = [...m.frameworks.get(f.id)!.tasks.values()].filter((t) => t.state === 'TASK_RUNNING' && !t.pending).length;
    if (running !== TASKS) throw new Error(`expected ${TASKS} acknowledged RUNNING tasks, got ${running}`);
    shell.stop();

    const total = steps.reduce((s, x) => s + x.micros, 0);
    const figures: Figure[] = [
      ...steps.map((s) => ({ what: `CPU per task: ${s.step}`, corral: `${(s.micros / TASKS).toFixed(1)} µs`, peer: '—', goal: '—', verdict: '—' })),
      ...steps.map((s) => ({ what: `call bytes per task: ${s.step.split(' ')[0]}`, corral: `${(s.bytes / TASKS).toFixed(0)} B`, peer: '—', goal: '—', verdict: '—' })),
      { what: `event bytes per task: the framework's UPDATE${PLAIN ? '' : '_BATCH'} records`, corral: `${(updateEventBytes / TASKS).toFixed(0)} B`, peer: '—', goal: '—', verdict: '—' },
      // 20,000 tasks/s on one core leaves 50 µs per task for everything, node:http and the sockets included.
      { what: 'CPU per task, all three steps (no HTTP)', corral: `${(total / TASKS).toFixed(1)} µs`, peer: '—', goal: '— (50 µs per task is 20,000/s on one core, HTTP included)', verdict: '—' },
      { what: 'heap the master keeps per RUNNING task', corral: `${keptPerTask.toFixed(0)} B`, peer: '—', goal: '—', verdict: '—' },
    ];
    printFigures(`master cost per task without HTTP: ${AGENTS} agents × ${CPUS} tasks, ${PLAIN ? 'plain bodies' : "corral's shorthands"}`, figures, jsonOutput());
  } finally {
    await store.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
