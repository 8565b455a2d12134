/**
 * The one node lifecycle: a node is a list of daemons (in start order) and a
 * scope (what else it owns on the host, see scope.ts), recorded in its state
 * file. `reconcileNode` brings the machine to the desired state:
 *
 *   running   keep every recorded daemon that is still the same process
 *             (pid and start time), start the missing ones in order, each
 *             once the previous one is ready
 *   stopped   SIGTERM the recorded daemons newest first, SIGKILL after a grace
 *   purged    kill everything of the node at once, then wipe its scope
 *
 * `corral node up|down` runs one pass; `corral up`'s supervisor runs the
 * same pass and then keeps it true (`superviseNode`: a daemon that dies is
 * restarted with backoff); the lab provisions each of its hosts with
 * `corral node up` and purges them with `corral node down --purge`; the
 * test sweeper purges the scope of the test root. Only recorded or marked
 * processes are ever signalled, each by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { isSameProcess, procStartTime, signalProcess, tail, waitDead, processAlive, inNamespace } from '../../common/sys/process.js';
import { killScope, sweepScope, type NodeScope, type SweepReport } from './scope.js';

export interface DaemonSpec {
  name: string;
  /** The whole command line. */
  argv: string[];
  /** stdout and stderr of the process. */
  outFile: string;
  /** Run inside this named network namespace (nsenter --net, never `ip netns exec`, which hides /sys/fs/cgroup). */
  netns?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** What it is, for people. */
  what?: string;
  /** Resolves with a short description once the daemon serves; throws while it does not. */
  ready(): Promise<string>;
}

export interface NodeProcess {
  name: string;
  pid: number;
  /** /proc start time: a recycled pid is never taken for ours. */
  startTime: string;
  logFile: string;
}

/** The node's own record of what it started and what it owns, for `down`, `status` and the sweeper. */
export interface NodeState {
  name: string;
  role?: string;
  processes: NodeProcess[];
  scope: NodeScope;
}

export function loadNodeState(file: string): NodeState | undefined {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as NodeState;
    return { ...s, processes: s.processes ?? [], scope: s.scope ?? { dirs: [] } };
  } catch {
    return undefined;
  }
}

export function saveNodeState(file: string, s: NodeState): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export const ours = (p: NodeProcess): boolean => isSameProcess(p.pid, p.startTime);

/**
 * Starts one daemon, output to its file. Detached daemons outlive the
 * command that started them (`corral node up`); attached ones are children
 * of a supervisor that watches them (`corral up`).
 */
export function startDaemon(d: DaemonSpec, o: { detached: boolean }): { process: NodeProcess; child: ChildProcess } {
  mkdirSync(dirname(d.outFile), { recursive: true });
  const argv = inNamespace(d.netns?.replace(/^\/run\/netns\//, ''), d.argv);
  const out = openSync(d.outFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out], detached: o.detached, env: d.env ?? process.env, ...(d.cwd ? { cwd: d.cwd } : {}) });
  closeSync(out);
  if (o.detached) child.unref();
  if (!child.pid) throw new CorralError('INTERNAL', `could not start ${d.name} (${argv[0]})`);
  return { process: { name: d.name, pid: child.pid, startTime: procStartTime(child.pid) ?? '', logFile: d.outFile }, child };
}

/** Waits until the daemon is ready; fails at once when its process is gone. */
async function waitReady(d: DaemonSpec, p: NodeProcess, timeoutMs: number, extraLog?: string): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (!ours(p)) throw new CorralError('UNAVAILABLE', `${d.name} exited during start-up; last lines of ${d.outFile}:\n${tail(d.outFile, 15)}${extraLog ? `\n${tail(extraLog, 10)}` : ''}`);
    try {
      return await d.ready();
    } catch (err) {
      last = errorMessage(err);
    }
    if (Date.now() > end) throw new CorralError('TIMEOUT', `${d.name} did not become ready within ${timeoutMs / 1000} s (${last}); last lines of ${d.outFile}:\n${tail(d.outFile, 15)}`);
    await sleep(100);
  }
}

/** Stops processes newest first: SIGTERM, then SIGKILL after `graceMs`. Only the same processes (pid and start time) are signalled. */
export async function stopProcesses(processes: NodeProcess[], graceMs = 10_000): Promise<void> {
  const live = [...processes].reverse().filter(ours);
  for (const p of live) signalProcess(p.pid, 'SIGTERM');
  if (
    !(await waitDead(
      live.map((p) => p.pid),
      graceMs,
    ))
  ) {
    for (const p of live) if (ours(p)) signalProcess(p.pid, 'SIGKILL');
    await waitDead(
      live.map((p) => p.pid),
      5000,
    );
  }
}

type DesiredState = 'running' | 'stopped' | 'purged';

interface ReconcileOptions {
  stateFile: string;
  name: string;
  role?: string;
  /** In start order (only for `running`). */
  daemons?: DaemonSpec[];
  /** What the node owns besides its daemons (kept in the state file for later passes). */
  scope?: NodeScope;
  timeoutMs?: number;
  graceMs?: number;
  /** Called with every process started (tests record the pids for their cleanup). */
  onPid?(name: string, pid: number): void;
  onReady?(d: DaemonSpec, detail: string): void;
  /** Extra log to show when a daemon fails to start (its structured log file). */
  logOf?(d: DaemonSpec): string | undefined;
  /** Recorded processes this pass does not manage (a control node's Ceph daemons, started by its bootstrap): left running. */
  unmanaged?(name: string): boolean;
}

interface ReconcileResult {
  state: NodeState;
  killed: number[];
  sweep?: SweepReport;
}

/** One pass towards the desired state; see the header. */
export async function reconcileNode(desired: DesiredState, o: ReconcileOptions): Promise<ReconcileResult> {
  const previous = loadNodeState(o.stateFile);
  const state: NodeState = {
    name: o.name,
    ...((o.role ?? previous?.role) ? { role: o.role ?? previous?.role } : {}),
    processes: (previous?.processes ?? []).filter(ours),
    scope: o.scope ?? previous?.scope ?? { dirs: [] },
  };
  saveNodeState(o.stateFile, state);
  if (desired === 'stopped') {
    await stopProcesses(state.processes, o.graceMs);
    state.processes = state.processes.filter(ours);
    saveNodeState(o.stateFile, state);
    return { state, killed: [] };
  }
  if (desired === 'purged') {
    const recorded = state.processes.filter(ours).map((p) => p.pid);
    for (const pid of recorded) signalProcess(pid, 'SIGKILL');
    await waitDead(recorded, 5000);
    const sweep = await sweepScope(state.scope);
    state.processes = state.processes.filter(ours);
    saveNodeState(o.stateFile, state);
    return { state, killed: [...recorded, ...sweep.killed], sweep };
  }
  // Desired state: a recorded daemon the node no longer runs (its component was dropped from the node file) is stopped.
  const wanted = new Set((o.daemons ?? []).map((d) => d.name));
  const dropped = state.processes.filter((p) => !wanted.has(p.name) && !o.unmanaged?.(p.name));
  if (dropped.length) {
    await stopProcesses(dropped, o.graceMs);
    state.processes = state.processes.filter((p) => !dropped.includes(p));
    saveNodeState(o.stateFile, state);
  }
  for (const d of o.daemons ?? []) {
    let p = state.processes.find((x) => x.name === d.name);
    if (!p) {
      p = startDaemon(d, { detached: true }).process;
      state.processes.push(p);
      saveNodeState(o.stateFile, state);
      o.onPid?.(p.name, p.pid);
    }
    const detail = await waitReady(d, p, o.timeoutMs ?? 90_000, o.logOf?.(d));
    o.onReady?.(d, detail);
  }
  return { state, killed: [] };
}

/** Kills the node at once, as a power cut would: its recorded daemons, marked processes, tasks and rbd-fuse helpers, all SIGKILL. Mounts and cgroups stay until a purge. */
export async function killNodeProcesses(stateFile: string): Promise<number[]> {
  const state = loadNodeState(stateFile);
  if (!state) return [];
  const recorded = state.processes.filter(ours).map((p) => p.pid);
  for (const pid of recorded) signalProcess(pid, 'SIGKILL');
  await waitDead(recorded, 5000);
  return [...recorded, ...(await killScope(state.scope))];
}

type DaemonRunState = 'pending' | 'starting' | 'ready' | 'restarting' | 'failed' | 'stopped';

export interface SupervisedDaemon {
  spec: DaemonSpec;
  state: DaemonRunState;
  pid?: number;
  restarts: number;
  detail?: string;
}

export interface Supervision {
  daemons: SupervisedDaemon[];
  /** Resolves once every daemon is ready; rejects when one fails to start (the others keep running until `stop`). */
  started: Promise<void>;
  /** Stops one daemon for good (no restart), e.g. the service framework before a drain. */
  stopDaemon(name: string, graceMs?: number): Promise<void>;
  /** Stops the daemons in reverse order (`before` runs first, e.g. draining tasks while they all still serve). */
  stop(o?: { graceMs?: number; before?: () => Promise<void> }): Promise<void>;
}

/**
 * `reconcileNode('running')` kept true in the foreground: the daemons are
 * children of this process, started in order, each once the previous one is
 * ready, and one that dies later is restarted (1 s, doubling to 30 s; a
 * daemon that ran a minute starts its count over). Every change is recorded
 * in the state file and reported to `onChange`.
 */
export function superviseNode(o: ReconcileOptions & { daemons: DaemonSpec[]; onChange?(daemons: SupervisedDaemon[]): void; log?(msg: string, fields: Record<string, unknown>): void }): Supervision {
  const daemons: SupervisedDaemon[] = o.daemons.map((spec) => ({ spec, state: 'pending', restarts: 0 }));
  const state: NodeState = { name: o.name, ...(o.role ? { role: o.role } : {}), processes: [], scope: o.scope ?? { dirs: [] } };
  const children = new Map<SupervisedDaemon, { child: ChildProcess; process: NodeProcess; startedAt: number; timer?: NodeJS.Timeout }>();
  let stopping = false;
  let startingUp = true;
  const changed = (): void => {
    state.processes = [...children.values()].map((c) => c.process);
    saveNodeState(o.stateFile, state);
    o.onChange?.(daemons);
  };
  const launch = (d: SupervisedDaemon): NodeProcess => {
    const { child, process: p } = startDaemon(d.spec, { detached: false });
    const entry: { child: ChildProcess; process: NodeProcess; startedAt: number; timer?: NodeJS.Timeout } = { child, process: p, startedAt: Date.now() };
    children.set(d, entry);
    d.pid = p.pid;
    o.onPid?.(d.spec.name, p.pid);
    child.once('exit', (code, signal) => {
      if (stopping || children.get(d) !== entry) return;
      if (startingUp) return; // start-up reports it
      children.delete(d);
      const why = signal ? `killed by ${signal}` : `exited with ${code}`;
      if (Date.now() - entry.startedAt > 60_000) d.restarts = 0;
      const delay = Math.min(30_000, 1000 * 2 ** d.restarts);
      d.restarts++;
      d.state = 'restarting';
      d.detail = `${why}; restarting in ${delay / 1000} s`;
      delete d.pid;
      o.log?.('daemon died; restarting', { daemon: d.spec.name, code, signal, delay });
      changed();
      const timer = setTimeout(() => {
        if (stopping) return;
        const np = launch(d);
        changed();
        void waitReady(d.spec, np, o.timeoutMs ?? 90_000).then(
          (detail) => {
            d.state = 'ready';
            d.detail = detail;
            changed();
          },
          (err: unknown) => o.log?.('restarted daemon is not ready', { daemon: d.spec.name, err: errorMessage(err) }),
        );
      }, delay);
      timer.unref?.();
      restartTimers.add(timer);
    });
    return p;
  };
  const restartTimers = new Set<NodeJS.Timeout>();
  const started = (async () => {
    saveNodeState(o.stateFile, state);
    for (const d of daemons) {
      if (stopping) throw new CorralError('UNAVAILABLE', 'stopped during start-up');
      d.state = 'starting';
      const p = launch(d);
      changed();
      try {
        d.detail = await waitReady(d.spec, p, o.timeoutMs ?? 90_000, o.logOf?.(d.spec));
      } catch (err) {
        d.state = 'failed';
        changed();
        throw err;
      }
      d.state = 'ready';
      o.onReady?.(d.spec, d.detail);
      changed();
    }
    startingUp = false;
  })();
  started.catch(() => undefined);
  return {
    daemons,
    started,
    async stopDaemon(name, graceMs = 15_000) {
      const d = daemons.find((x) => x.spec.name === name);
      const c = d && children.get(d);
      if (!d || !c) return;
      children.delete(d); // its exit is not a death to restart from
      await stopProcesses([c.process], graceMs);
      d.state = 'stopped';
      delete d.pid;
      changed();
    },
    async stop(so = {}) {
      if (stopping) return;
      await so.before?.().catch((err: unknown) => o.log?.('before-stop step failed', { err: errorMessage(err) }));
      stopping = true;
      for (const t of restartTimers) clearTimeout(t);
      for (const d of [...daemons].reverse()) {
        const c = children.get(d);
        if (c && processAlive(c.process.pid)) await stopProcesses([c.process], so.graceMs ?? 15_000);
        children.delete(d);
        d.state = 'stopped';
        delete d.pid;
        changed();
      }
    },
  };
}
