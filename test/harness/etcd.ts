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

/** Server-side TLS of a test etcd: its certificate (for clients and, in a cluster, peers) and the CA it trusts. */
export interface EtcdServerTls {
  ca: string;
  cert: string;
  key: string;
  /** Require a client certificate signed by `ca` (etcd's --client-cert-auth; peers always need one). */
  clientCertAuth?: boolean;
}

export interface EtcdStartOptions {
  /** Clients (and peers) over TLS: the endpoint is then https://, and health is read on a plain metrics URL. */
  tls?: EtcdServerTls;
  /** More etcd flags (e.g. --auth-token-ttl). */
  extraArgs?: string[];
}

interface MemberPorts {
  name: string;
  client: number;
  peer: number;
  metrics: number;
}

const scheme = (opts: EtcdStartOptions): string => (opts.tls ? 'https' : 'http');

function memberArgs(dataDir: string, m: MemberPorts, cluster: MemberPorts[], token: string, opts: EtcdStartOptions): string[] {
  const endpoint = `${scheme(opts)}://127.0.0.1:${m.client}`;
  const peerUrl = (p: MemberPorts) => `${scheme(opts)}://127.0.0.1:${p.peer}`;
  const t = opts.tls;
  return [
    '--name',
    m.name,
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    endpoint,
    '--advertise-client-urls',
    endpoint,
    '--listen-peer-urls',
    peerUrl(m),
    '--initial-advertise-peer-urls',
    peerUrl(m),
    '--initial-cluster',
    cluster.map((p) => `${p.name}=${peerUrl(p)}`).join(','),
    '--initial-cluster-token',
    token,
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
    ...(t
      ? [
          '--listen-metrics-urls',
          `http://127.0.0.1:${m.metrics}`,
          '--cert-file',
          t.cert,
          '--key-file',
          t.key,
          '--trusted-ca-file',
          t.ca,
          ...(t.clientCertAuth ? ['--client-cert-auth'] : []),
          '--peer-cert-file',
          t.cert,
          '--peer-key-file',
          t.key,
          '--peer-trusted-ca-file',
          t.ca,
          '--peer-client-cert-auth',
        ]
      : []),
    ...(opts.extraArgs ?? []),
  ];
}

async function memberPorts(name: string): Promise<MemberPorts> {
  return { name, client: await freePort(), peer: await freePort(), metrics: await freePort() };
}

/** One member process of a (one- or more-member) cluster, started and stopped by its PID. */
async function startMember(bin: string, m: MemberPorts, cluster: MemberPorts[], token: string, opts: EtcdStartOptions): Promise<EtcdHandle> {
  const dataDir = mkdtempSync(join(tmpdir(), 'corral-etcd-'));
  const endpoint = `${scheme(opts)}://127.0.0.1:${m.client}`;
  // Over TLS, /health on the client URL would need a client certificate; the metrics URL serves it plainly.
  const healthUrl = opts.tls ? `http://127.0.0.1:${m.metrics}` : endpoint;
  const args = memberArgs(dataDir, m, cluster, token, opts);
  let current = spawnEtcd(bin, args);
  const launch = async () => {
    await Promise.race([waitHealthy(healthUrl, current.child, current.stderr, cluster.length > 1 ? 60_000 : 20_000), current.spawnFailed]);
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
export async function startEtcd(opts: EtcdStartOptions = {}): Promise<EtcdHandle> {
  const bin = requireEtcdBinary();
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const m = await memberPorts('corral-test');
      return await startMember(bin, m, [m], 'etcd-cluster', opts);
    } catch (e) {
      last = e;
      if (!/address already in use/i.test(String(e))) break;
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}

/**
 * A cluster of `size` members on 127.0.0.1 (peers over TLS when `tls` is
 * given); resolves once every member is healthy, which needs a quorum. On a
 * failure the members already started are stopped.
 */
export async function startEtcdCluster(size: number, opts: EtcdStartOptions = {}): Promise<EtcdHandle[]> {
  const bin = requireEtcdBinary();
  const members: MemberPorts[] = [];
  for (let i = 0; i < size; i++) members.push(await memberPorts(`corral-test-${i}`));
  const token = `corral-test-${members[0]!.client}`;
  const results = await Promise.allSettled(members.map((m) => startMember(bin, m, members, token, opts)));
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((h) => h.stop()));
    throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
  }
  return started;
}
