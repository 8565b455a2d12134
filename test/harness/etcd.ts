/**
 * Starts a real single-member etcd for integration tests: 127.0.0.1 only, free
 * ports, a temp data dir, automatic compaction off (tests compact explicitly).
 * The process is stopped by the PID we started, never by name, and the data
 * dir is removed even when the tests fail.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const ETCD_BIN = process.env.CORRAL_ETCD_BIN ?? '/usr/bin/etcd';

export interface EtcdHandle {
  /** Client URL, e.g. http://127.0.0.1:23791 */
  readonly endpoint: string;
  readonly pid: number;
  readonly dataDir: string;
  /** Stop the process (SIGTERM, then SIGKILL) but keep its data, to simulate an outage. */
  kill(): Promise<void>;
  /** Start again (after kill) on the same ports and data. */
  restart(): Promise<void>;
  /** Stop for good and remove the data dir; safe to call more than once. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if the runner dies before afterAll: never leave our etcd behind.
  process.on('exit', () => {
    for (const child of live) {
      if (child.pid && child.exitCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
}

export function requireEtcdBinary(): string {
  if (!existsSync(ETCD_BIN)) {
    throw new Error(`etcd binary not found at ${ETCD_BIN}: install it with \`apt-get install etcd-server\` (or set CORRAL_ETCD_BIN)`);
  }
  return ETCD_BIN;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return;
  if (child.exitCode === null && child.signalCode === null) {
    process.kill(child.pid, 'SIGTERM');
    if (!(await waitExit(child, 10_000))) {
      process.kill(child.pid, 'SIGKILL');
      await waitExit(child, 5_000);
    }
  }
  live.delete(child);
}

async function waitHealthy(endpoint: string, child: ChildProcess, stderr: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited early (code ${child.exitCode}, signal ${child.signalCode}): ${stderr().slice(-2000)}`);
    }
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) {
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms: ${stderr().slice(-2000)}`);
}

function spawnEtcd(bin: string, args: string[]): { child: ChildProcess; stderr: () => string; spawnFailed: Promise<never> } {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  installExitHook();
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    err = (err + chunk).slice(-20_000);
  });
  const spawnFailed = new Promise<never>((_, reject) => child.once('error', reject));
  spawnFailed.catch(() => undefined);
  return { child, stderr: () => err, spawnFailed };
}

async function startOnce(bin: string): Promise<EtcdHandle> {
  const dataDir = mkdtempSync(join(tmpdir(), 'corral-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name',
    'corral-test',
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    endpoint,
    '--advertise-client-urls',
    endpoint,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `corral-test=${peer}`,
    '--initial-cluster-state',
    'new',
    '--auto-compaction-retention',
    '0',
    '--logger',
    'zap',
    '--log-outputs',
    'stderr',
    '--log-level',
    'warn',
  ];
  let current = spawnEtcd(bin, args);
  const launch = async () => {
    await Promise.race([waitHealthy(endpoint, current.child, current.stderr, 20_000), current.spawnFailed]);
  };
  const cleanup = async () => {
    await stopChild(current.child);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await launch();
  } catch (e) {
    await cleanup();
    throw e;
  }
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    dataDir,
    get pid() {
      return current.child.pid!;
    },
    kill: () => stopChild(current.child),
    restart: async () => {
      await stopChild(current.child);
      current = spawnEtcd(bin, args);
      await launch();
    },
    stop: () => (stopped ??= cleanup()),
  };
}

/** Start etcd; retries a couple of times because a free port can be taken between probe and bind. */
export async function startEtcd(): Promise<EtcdHandle> {
  const bin = requireEtcdBinary();
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(bin);
    } catch (e) {
      last = e;
      if (!/address already in use/i.test(String(e))) break;
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}
