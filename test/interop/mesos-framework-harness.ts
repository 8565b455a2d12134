/**
 * The `mesos-framework` npm package (a third-party Mesos v1 HTTP scheduler
 * library, CommonJS) driven unmodified against a corral master: it is
 * loaded with createRequire, told the master's address, and watched through
 * the events it emits. Nothing of it is patched; what it sends and how it
 * reads the event stream is exactly what it does against Mesos.
 */
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EventEmitter } from 'node:events';
import { untilValue } from '../harness/wait.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import type { AgentEvent, V1FrameworkSummary, V1Task } from '../../contracts/v1/v1.js';

const require = createRequire(import.meta.url);

/** The parts of the package's API the tests use. */
export interface MesosFrameworkScheduler extends EventEmitter {
  frameworkId: string | null;
  mesosStreamId: string | null;
  launchedTasks: Array<{ taskId: string; name: string; runtimeInfo?: { agentId?: string; state?: string } }>;
  pendingTasks: unknown[];
  subscribe(): void;
  reconcile(taskId?: string, agentId?: string): void;
  kill(taskId: string, agentId: string): void;
  teardown(): void;
  /** The SUBSCRIBE request whose response is the event stream. */
  httpRequest?: { destroy(): void };
  /** Where it sends calls: its options, rewritten when it follows a SUBSCRIBE's 307 (lib/scheduler.js handleRedirect). */
  options: { masterUrl: string; port: number | string };
}

interface MesosFrameworkModule {
  Scheduler: new (options: Record<string, unknown>) => MesosFrameworkScheduler;
  Mesos: { getMesos(): MesosProto };
}

/** The package's protobuf.js builder for the Mesos messages (as its own examples build tasks). */
export interface MesosProto {
  CommandInfo: new (uris: unknown, environment: unknown, shell: boolean, value: string) => unknown;
}

export const mesosFramework = require('mesos-framework') as MesosFrameworkModule;

export interface SchedulerStatus {
  task_id: { value: string };
  state: string;
  source?: string;
  reason?: string;
  message?: string;
  uuid?: string;
  agent_id?: { value: string };
}

export interface SchedulerOffer {
  id: { value: string };
  agent_id: { value: string };
  hostname: string;
  url?: { scheme: string; address: { hostname: string; ip: string; port: number }; path: string };
}

/** A mesos-framework Scheduler and everything it reported, in order. */
export interface WatchedScheduler {
  scheduler: MesosFrameworkScheduler;
  updates: SchedulerStatus[];
  offers: SchedulerOffer[];
  errors: string[];
  /** Names of the library's own events ("sent_accept", "sent_acknowledge", …) in order. */
  sent: string[];
  /** Waits for a status update matching `pred` (one seen already counts). */
  update(pred: (s: SchedulerStatus) => boolean, what: string, timeoutMs?: number): Promise<SchedulerStatus>;
  /**
   * Keep the package from subscribing again. It re-subscribes whenever its
   * stream ends, even after its own TEARDOWN, and a socket of a refused
   * SUBSCRIBE that idles past its masterConnectionTimeout makes it call
   * process.exit: a test that is done must not leave it trying.
   */
  stopResubscribing(): void;
  /** stopResubscribing(), and close its event stream if still open. */
  stop(): void;
}

const SENT = ['sent_subscribe', 'sent_accept', 'sent_decline', 'sent_acknowledge', 'sent_reconcile', 'sent_kill', 'sent_teardown'];

/**
 * A Scheduler for the master at `host:port`, logging under `logDir` (the
 * package otherwise writes to ./logs), with any further package `options`
 * (e.g. masterConnectionTimeout). Subscribes once the package says it is ready.
 */
export function startScheduler(opts: { host: string; port: number; logDir: string; tasks: Record<string, unknown>; frameworkName: string; options?: Record<string, unknown> }): WatchedScheduler {
  mkdirSync(opts.logDir, { recursive: true });
  const scheduler = new mesosFramework.Scheduler({
    masterUrl: opts.host,
    port: opts.port,
    frameworkName: opts.frameworkName,
    tasks: opts.tasks,
    logging: { path: opts.logDir, fileName: 'mesos-framework.log', level: 'warn' },
    ...opts.options,
  });
  const watched: WatchedScheduler = {
    scheduler,
    updates: [],
    offers: [],
    errors: [],
    sent: [],
    update: (pred, what, timeoutMs = 20_000) => untilValue(what, async () => watched.updates.find(pred), timeoutMs, 25),
    stopResubscribing: () => {
      scheduler.subscribe = () => undefined;
    },
    stop: () => {
      watched.stopResubscribing();
      scheduler.httpRequest?.destroy();
    },
  };
  scheduler.on('update', (u: { status: SchedulerStatus }) => watched.updates.push(u.status));
  scheduler.on('offers', (o: { offers: SchedulerOffer[] }) => watched.offers.push(...o.offers));
  // An EventEmitter without an 'error' listener throws; the test asserts on what was reported.
  scheduler.on('error', (e: unknown) => watched.errors.push(e instanceof Error ? e.message : typeof e === 'string' ? e : JSON.stringify(e)));
  for (const name of SENT) scheduler.on(name, () => watched.sent.push(name));
  scheduler.once('ready', () => scheduler.subscribe());
  return watched;
}

export const logDirUnder = (dir: string): string => join(dir, 'mesos-framework-logs');

/**
 * The package at `host:port` as framework `frameworkName`, running `instances`
 * long-running tasks (each with one port of the agent's range); stopped after
 * the test.
 */
export function startSleepers(cleanup: Array<() => Promise<unknown>>, opts: { host: string; port: number; dir: string; frameworkName: string; instances: number }): WatchedScheduler {
  const mesos = mesosFramework.Mesos.getMesos();
  const w = startScheduler({
    host: opts.host,
    port: opts.port,
    logDir: logDirUnder(opts.dir),
    frameworkName: opts.frameworkName,
    tasks: { sleeper: { instances: opts.instances, commandInfo: new mesos.CommandInfo(null, null, true, 'sleep 3600'), resources: { cpus: 0.5, mem: 64, disk: 0, ports: 1 } } },
  });
  cleanup.push(async () => w.stop());
  return w;
}

/** A simulated agent with room for the package's tasks, and the LAUNCH events it receives; stopped after the test. */
export async function recordingAgent(cleanup: Array<() => Promise<unknown>>, master: string | string[], hostname: string): Promise<{ agent: SimAgent; launches: AgentEvent[] }> {
  const agent = new SimAgent({ master, hostname, resources: 'cpus:2;mem:1024;disk:1024;ports:[31000-31010]', updateRetryMs: 500 });
  cleanup.push(() => agent.stop());
  await agent.start();
  const launches: AgentEvent[] = [];
  agent.on((e) => e.type === 'LAUNCH' && launches.push(e));
  return { agent, launches };
}

/** The ids of the tasks launched, in order. */
export const launchedTaskIds = (launches: AgentEvent[]): string[] => launches.flatMap((e) => (e.type === 'LAUNCH' ? e.launch.tasks.map((t) => t.task_id.value) : []));

/** Errors the package reports for things that should never happen against a Mesos master. */
export const protocolErrors = (w: WatchedScheduler): string[] => w.errors.filter((e) => /not accepted|parse|linebreak|Error registering|Mesos-Stream-Id/i.test(e));

/** One operator call's answer field, on a client of its own. */
async function operator<T>(url: string, type: string, field: string): Promise<T> {
  const ops = new OperatorClient({ master: url });
  try {
    return (await ops.call<Record<string, T>>(type))[field]!;
  } finally {
    await ops.close();
  }
}

export const tasksOf = (url: string): Promise<{ tasks: V1Task[]; completed_tasks: V1Task[] }> => operator(url, 'GET_TASKS', 'get_tasks');
export const frameworksOf = (
  url: string,
): Promise<{ frameworks: V1FrameworkSummary[]; completed_frameworks: V1FrameworkSummary[]; recovered_frameworks?: Array<V1FrameworkSummary['framework_info']> }> =>
  operator(url, 'GET_FRAMEWORKS', 'get_frameworks');
export const agentsOf = (url: string): Promise<{ agents: Array<{ agent_info: { id?: { value: string } }; active: boolean }> }> => operator(url, 'GET_AGENTS', 'get_agents');
