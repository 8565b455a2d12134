/**
 * The multi-host lab end to end (issue 7): a 4-host full namespace lab
 * (control node with master, services, discovery and a memstore Ceph; per
 * host an agent, the rbd volume driver and the CNI node daemon + exabgp,
 * each provisioned by `corral node up` in its namespace).
 *  - Deploy: an app of 3 instances across the lab, each with its rbd volume
 *    (created, mkfs'd, attached), a routed IP and a DNS name: PUT → all
 *    RUNNING, and → the name answers all three (dig from a host).
 *  - Failover: data written through one instance, its host killed
 *    (SIGKILL of its processes, tasks and rbd-fuse; its underlay link
 *    deleted): kill → replacement RUNNING on the spare host, → its name
 *    answers the new IP, → it serves the data (volume fenced and attached
 *    there), → every host routes to it via the spare and nothing via the
 *    dead host. Goal ≤ 15 s, dominated by the detection timeout.
 *
 * A fresh lab per round (a failover uses up the spare host).
 * Usage: npx tsx bench/lab-failover.ts [--rounds 3] [--agent-timeout-ms 1000] [--heartbeat-ms 500] [--hold-time 3] [--json]
 */
import { forgetPid, recordPid, testDir } from '../test/harness/resources.js';
import { killHost, labDown } from '../lab/lab.js';
import { deployAndWait, failover, startFullLab, storeApp, type DeployResult, type FailoverResult } from '../test/lab-e2e/full-lab.js';
import { flag, fmt, jsonOutput, median, printFigures } from './volume-common.js';

const rounds = flag('--rounds', 3);
const unreachableMs = flag('--agent-timeout-ms', 1000);
const heartbeatMs = flag('--heartbeat-ms', 500);
const holdTime = flag('--hold-time', 3);
const deploys: DeployResult[] = [];
const failovers: FailoverResult[] = [];
const labUpMs: number[] = [];

for (let round = 0; round < rounds; round++) {
  const dir = testDir('bench-lab');
  const pids: Array<[string, number]> = [];
  try {
    const t0 = Date.now();
    const lab = await startFullLab({
      prefix: 'ct-lbbench',
      hosts: 4,
      dir,
      holdTime,
      unreachableMs,
      heartbeatMs,
      onPid: (name, pid) => {
        recordPid(`bench-lab-${name}`, pid);
        pids.push([`bench-lab-${name}`, pid]);
      },
    });
    labUpMs.push(Date.now() - t0);
    deploys.push(await deployAndWait(lab, storeApp('kv', 3), 'h1'));
    failovers.push(await failover(lab, 'kv', 1, `round-${round}`, (host) => killHost(lab.state, host)));
    process.stderr.write(`round ${round + 1}/${rounds}: deploy ${deploys.at(-1)!.resolvableMs} ms, failover ${JSON.stringify(failovers.at(-1))}\n`);
  } finally {
    await labDown(dir);
    for (const [name, pid] of pids) forgetPid(name, pid);
  }
}

const s = (xs: number[]) => `${fmt(median(xs) / 1000, 2)} s median, ${fmt(Math.max(...xs) / 1000, 2)} s max`;
const detection = `heartbeat ${heartbeatMs} ms × 2 missed + unreachable timeout ${unreachableMs} ms; BGP hold ${holdTime} s`;
const total = failovers.map((f) => f.totalMs);
printFigures(
  `4-host namespace lab, real agents/Ceph/exabgp, ${rounds} round(s); ${detection}`,
  [
    { what: 'lab up (4 hosts + control, corral node up per namespace)', corral: s(labUpMs), peer: '—', goal: '—', verdict: '—' },
    { what: 'deploy 3 instances → all RUNNING (rbd volume + IP each)', corral: s(deploys.map((d) => d.runningMs)), peer: 'Mesos 1.7: 1000 tasks on one agent ~30 s', goal: '—', verdict: '—' },
    { what: 'deploy 3 instances → RUNNING and resolvable (dig)', corral: s(deploys.map((d) => d.resolvableMs)), peer: 'Mesos-DNS: up to 60 s stale', goal: '—', verdict: '—' },
    { what: 'host killed → instance not running at the framework (detection)', corral: s(failovers.map((f) => f.detectedMs)), peer: '—', goal: '—', verdict: '—' },
    { what: 'host killed → replacement RUNNING on the spare', corral: s(failovers.map((f) => f.runningMs)), peer: '—', goal: '—', verdict: '—' },
    { what: 'host killed → name answers the new IP', corral: s(failovers.map((f) => f.resolvableMs)), peer: '—', goal: '—', verdict: '—' },
    { what: 'host killed → data read back through the new instance', corral: s(failovers.map((f) => f.dataMs)), peer: '—', goal: '—', verdict: '—' },
    { what: 'host killed → routes converged (none via the dead host)', corral: s(failovers.map((f) => f.routesMs)), peer: `BGP hold timer ${holdTime} s`, goal: '—', verdict: '—' },
    { what: 'host failure → RUNNING elsewhere with volume and name', corral: s(total), peer: '—', goal: '≤ 15 s', verdict: Math.max(...total) <= 15_000 ? 'met' : 'missed' },
  ],
  jsonOutput(),
);
