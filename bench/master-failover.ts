/**
 * Replicated masters on etcd: how long the cluster has no master to talk to.
 * One real etcd and three `corral master` processes with ha.enabled; the
 * registry holds `--agents` admitted agents (registered once, then left to be
 * recovered) and a framework. Per round:
 *  - the leader is killed with SIGKILL (a crash: its lease must expire) or,
 *    with `--sigterm`, stopped gracefully (it resigns, revoking its lease);
 *  - timed until another master answers an operator call (GET_HEALTH on
 *    /api/v1 with 200): elected, then registry recovered (the new leader
 *    logs how long that took);
 *  - the killed master is started again as a follower, as a supervisor would.
 *
 * Goal: ≤ 3 s with default settings. Peer: Mesos masters elect through
 * ZooKeeper; a crashed leader is noticed when its ZooKeeper session expires
 * (--zk_session_timeout, 10 s by default), then the new leader recovers the
 * registry from the replicated log — ~10 s plus recovery.
 *
 * Usage: npx tsx bench/master-failover.ts [--rounds 5] [--lease-ttl 5] [--agents 200] [--sigterm] [--json]
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Agent as Dispatcher } from 'undici';
import { startEtcd } from '../test/harness/etcd.js';
import { MasterProcess, writeHaMasterConfig } from '../test/harness/master-process.js';
import { freePort } from '../test/harness/ports.js';
import { testDir } from '../test/harness/resources.js';
import { SimAgent } from '../core-scheduler/src/sim/sim-agent.js';
import { TestFramework } from '../test/harness/framework.js';
import { flag, fmt, jsonOutput, median, printFigures } from './volume-common.js';

const rounds = flag('--rounds', 5, { whole: true, min: 1 });
const ttl = flag('--lease-ttl', 5, { whole: true, min: 1 });
const agentCount = flag('--agents', 200, { whole: true });
const graceful = process.argv.includes('--sigterm');

async function serves(m: MasterProcess): Promise<boolean> {
  try {
    const res = await fetch(`${m.url}/api/v1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type":"GET_HEALTH"}',
      redirect: 'manual',
      signal: AbortSignal.timeout(1000),
    });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function leaderOf(masters: MasterProcess[], deadlineMs = 60_000): Promise<MasterProcess> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    for (const m of masters) if (m.running && (await serves(m))) return m;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no master serves');
}

const dir = testDir('bench-master-failover');
const etcd = await startEtcd();
const masters: MasterProcess[] = [];
const failovers: number[] = [];
const elections: number[] = [];
try {
  for (let i = 0; i < 3; i++) {
    const workDir = join(dir, `m${i}`);
    const config = writeHaMasterConfig(workDir, { etcdEndpoint: etcd.endpoint, namespace: 'bench/', leaseTtlSeconds: ttl });
    masters.push(new MasterProcess(workDir, await freePort(), ['--no-auth', '--config', config]));
  }
  await Promise.all(masters.map((m) => m.start()));
  const first = await leaderOf(masters);

  // Something to recover: agents admitted once (they stay in the registry) and a framework.
  const dispatcher = new Dispatcher({ connections: 8, pipelining: 4 });
  const streamDispatcher = new Dispatcher({ connections: null, pipelining: 1 });
  const agents = Array.from(
    { length: agentCount },
    (_, i) => new SimAgent({ master: first.url, hostname: `h${i}`, resources: 'cpus:4;mem:4096', reconnect: false, dispatcher, streamDispatcher, keepEvents: false }),
  );
  await Promise.all(agents.map((a) => a.start()));
  const fw = new TestFramework(first.url, { name: 'bench', failover_timeout: 3600 });
  await fw.subscribe();
  process.stderr.write(`registry: ${agentCount} agents and a framework registered\n`);
  await Promise.all(agents.map((a) => a.stop()));
  fw.client.disconnect();
  await fw.client.close();
  await Promise.all([dispatcher.destroy(), streamDispatcher.destroy()]);

  for (let round = 0; round < rounds; round++) {
    const leader = await leaderOf(masters);
    const others = masters.filter((m) => m !== leader);
    const t0 = Date.now();
    const killing = leader.kill(graceful ? 'SIGTERM' : 'SIGKILL');
    let servedAt = 0;
    let next: MasterProcess | undefined;
    while (!servedAt && Date.now() - t0 < 60_000) {
      for (const m of others) {
        if (await serves(m)) {
          servedAt = Date.now();
          next = m;
          break;
        }
      }
      if (!servedAt) await new Promise((r) => setTimeout(r, 20));
    }
    await killing;
    if (!servedAt || !next) throw new Error(`round ${round + 1}: no new leader within 60 s`);
    failovers.push(servedAt - t0);
    // The new leader logs how long its recovery took after the election ("leading: …", ms).
    const line = next.output.split('\n').findLast((l) => l.includes('leading: registry recovered'));
    const recoveryMs = line ? Number((JSON.parse(line) as { ms?: number }).ms ?? 0) : 0;
    elections.push(servedAt - t0 - recoveryMs);
    process.stderr.write(`round ${round + 1}/${rounds}: ${graceful ? 'SIGTERM' : 'SIGKILL'} → elected ${elections.at(-1)} ms → serving ${failovers.at(-1)} ms\n`);
    // The supervisor starts the old leader again; it joins as a follower.
    await leader.start();
  }
} finally {
  for (const m of masters) await m.kill();
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
}

const s = (xs: number[]) => `${fmt(median(xs) / 1000, 2)} s median, ${fmt(Math.min(...xs) / 1000, 2)}–${fmt(Math.max(...xs) / 1000, 2)} s`;
// The goal is set for the default settings (lease TTL 5 s, a crash); other runs say what they ran with.
const met = `${Math.max(...failovers) <= 3000 ? 'met' : 'not met'}${ttl !== 5 || graceful ? ` (${graceful ? 'SIGTERM, ' : ''}TTL ${ttl} s)` : ''}`;
printFigures(
  `Master failover on etcd: 3 masters, lease TTL ${ttl} s, ${agentCount} agents + 1 framework in the registry, ${rounds} rounds, leader ${graceful ? 'SIGTERM (resigns)' : 'SIGKILL'}`,
  [
    { what: 'leader lost → new leader serving calls', corral: s(failovers), peer: 'Mesos/ZooKeeper: ~10 s (zk_session_timeout) + registry recovery', goal: '≤ 3 s (default settings)', verdict: met },
    { what: '  of which: until elected', corral: s(elections), peer: '~10 s', goal: '—', verdict: '—' },
    { what: '  of which: recovery after election', corral: s(failovers.map((f, i) => f - elections[i]!)), peer: '—', goal: '—', verdict: '—' },
  ],
  jsonOutput(),
);
