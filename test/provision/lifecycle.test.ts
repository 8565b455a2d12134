/**
 * The one node lifecycle with real processes: reconcile to running (in
 * order, each once ready; a second pass keeps what runs and restarts only
 * what died), stopped, purged (marked descendants too), and the foreground
 * supervision that restarts a daemon that dies.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { recordPid, testDir } from '../harness/resources.js';
import { loadNodeState, ours, reconcileNode, superviseNode, type DaemonSpec } from '../../provision/src/lifecycle.js';
import { markedPids } from '../../provision/src/scope.js';
import { processAlive, signalProcess } from '../../common/sys/process.js';
import { waitUntil } from '../../common/sys/wait.js';

const dir = testDir('lifecycle');
const stateFile = join(dir, 'node-state.json');
const MARKER = { env: 'CORRAL_LIFECYCLE_TEST', value: dir };

/** A daemon that serves once it has started a child of its own (a descendant only the marker finds). */
function httpDaemon(name: string, port: number, started: string[]): DaemonSpec {
  const program = `
    require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    require('http').createServer((q, r) => r.end('ok')).listen(${port}, '127.0.0.1');`;
  return {
    name,
    argv: [process.execPath, '-e', program],
    outFile: join(dir, `${name}.out`),
    env: { ...process.env, [MARKER.env]: MARKER.value },
    ready: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      started.push(name);
      return `serving on ${port}`;
    },
  };
}

afterAll(async () => {
  await reconcileNode('purged', { stateFile, name: 'n1' });
  rmSync(dir, { recursive: true, force: true });
});

describe('reconcileNode', () => {
  it('starts the daemons in order, keeps what runs, restarts only what died, stops and purges', async () => {
    const ready: string[] = [];
    const daemons = [httpDaemon('first', await freePort(), ready), httpDaemon('second', await freePort(), ready)];
    const scope = { dirs: [dir], marker: MARKER };
    const onPid = (name: string, pid: number): void => recordPid(`lifecycle-${name}`, pid);
    await reconcileNode('running', { stateFile, name: 'n1', scope, daemons, onPid, timeoutMs: 60_000 });
    expect(ready).toEqual(['first', 'second']);
    const before = loadNodeState(stateFile)!.processes;
    expect(before.map((p) => p.name)).toEqual(['first', 'second']);
    expect(before.every(ours)).toBe(true);

    // Kill one: the next pass starts only that one again.
    signalProcess(before[0]!.pid, 'SIGKILL');
    await waitUntil(() => !processAlive(before[0]!.pid), { timeoutMs: 10_000, what: 'the killed daemon to be gone' });
    await reconcileNode('running', { stateFile, name: 'n1', scope, daemons, onPid, timeoutMs: 60_000 });
    const after = loadNodeState(stateFile)!.processes;
    expect(after.find((p) => p.name === 'second')!.pid).toBe(before[1]!.pid);
    expect(after.find((p) => p.name === 'first')!.pid).not.toBe(before[0]!.pid);

    // The node file drops a daemon: the next pass stops it and keeps the other.
    await reconcileNode('running', { stateFile, name: 'n1', scope, daemons: [daemons[1]!], onPid, timeoutMs: 60_000 });
    const firstNow = after.find((p) => p.name === 'first')!;
    expect(ours(firstNow)).toBe(false);
    expect(loadNodeState(stateFile)!.processes.map((p) => p.name)).toEqual(['second']);

    await reconcileNode('stopped', { stateFile, name: 'n1' });
    expect(after.some(ours)).toBe(false);
    // Their children outlive a stop (as tasks outlive an agent stop); a purge ends them by the marker.
    expect(markedPids(scope).length).toBeGreaterThan(0);
    const purged = await reconcileNode('purged', { stateFile, name: 'n1' });
    expect(markedPids(scope)).toEqual([]);
    expect(purged.sweep?.errors).toEqual([]);
  }, 180_000);

  it('fails a start clearly when a daemon exits, naming it and its output', async () => {
    const bad: DaemonSpec = {
      name: 'broken',
      argv: [process.execPath, '-e', 'console.error("no config"); process.exit(3)'],
      outFile: join(dir, 'broken.out'),
      ready: async () => {
        throw new Error('not yet');
      },
    };
    await expect(reconcileNode('running', { stateFile: join(dir, 'bad-state.json'), name: 'bad', daemons: [bad], timeoutMs: 30_000 })).rejects.toThrow(/broken exited during start-up[\s\S]*no config/);
  }, 60_000);
});

describe('superviseNode', () => {
  it('restarts a daemon that dies, stops one for good on request, and stops the rest in reverse order', async () => {
    const ready: string[] = [];
    const daemons = [httpDaemon('a', await freePort(), ready), httpDaemon('b', await freePort(), ready)];
    const file = join(dir, 'supervised.json');
    const s = superviseNode({ stateFile: file, name: 'sup', scope: { dirs: [dir], marker: MARKER }, daemons, timeoutMs: 60_000, onPid: (n, pid) => recordPid(`supervised-${n}`, pid) });
    await s.started;
    const first = s.daemons[0]!.pid!;
    signalProcess(first, 'SIGKILL');
    await waitUntil(() => s.daemons[0]!.state === 'ready' && s.daemons[0]!.pid !== first, { timeoutMs: 60_000, what: 'daemon a restarted and ready' });
    expect(s.daemons[0]!.restarts).toBe(1);
    expect(loadNodeState(file)!.processes.find((p) => p.name === 'a')!.pid).toBe(s.daemons[0]!.pid);

    const b = s.daemons[1]!.pid!;
    await s.stopDaemon('b');
    expect(processAlive(b)).toBe(false);
    expect(s.daemons[1]!.state).toBe('stopped');
    const a = s.daemons[0]!.pid!;
    await s.stop();
    expect(processAlive(a)).toBe(false);
    expect(s.daemons.map((d) => d.state)).toEqual(['stopped', 'stopped']);
    await reconcileNode('purged', { stateFile: file, name: 'sup' });
  }, 180_000);
});
