/**
 * CNI ADD/DEL latency, corral vs Debian's reference `ptp` + `host-local`,
 * side by side in one run, same namespaces, both exec'd the way a runtime
 * execs a plugin (CNI_* env, config on stdin, wall time of the exec).
 * Goals: ADD median ≤ 1.0× and DEL median ≤ 0.5× the reference's.
 *
 * Everything runs inside a throw-away "host" namespace (ct-cnib-h): the
 * benchmark re-executes itself there, so neither plugin touches the root
 * namespace. Cycles alternate between the two plugins in blocks of 10, with
 * a pause after each block so neither pays for the other's background work.
 *
 * Usage: npx tsx bench/cni-add-del.ts [--cycles 100] [--json]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNamedNetns, deleteNamedNetns, namedNetnsPath } from '../common/netkit/netns.js';
import { execPlugin, type PluginRun } from '../common/cni-runtime/exec.js';
import { spawnDaemon } from '../plugins/cni-calico-like/src/daemon/spawn.js';
import { shimPath } from '../plugins/cni-calico-like/src/install.js';
import { summarize, printTable } from './cni-stats.js';

const HOST_NS = 'ct-cnib-h';
const CONTAINERS = 10;
const REF = { ADD: 7.55, DEL: 16.97 };
const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const cycles = flag('--cycles', 100);
const json = args.includes('--json');

async function outer(): Promise<void> {
  await createNamedNetns(HOST_NS);
  const names = Array.from({ length: CONTAINERS }, (_, i) => `ct-cnib-c${i}`);
  try {
    for (const n of names) await createNamedNetns(n);
    const self = fileURLToPath(import.meta.url);
    const res = spawnSync('ip', ['netns', 'exec', HOST_NS, process.execPath, ...process.execArgv, self, '--inside', ...args], { stdio: 'inherit' });
    process.exitCode = res.status ?? 1;
  } finally {
    for (const n of names) await deleteNamedNetns(n);
    await deleteNamedNetns(HOST_NS);
  }
}

function must(r: PluginRun, what: string): PluginRun {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return r;
}

async function inside(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'corral-cnibench-'));
  const socket = join(dir, 'cni.sock');
  const configFile = join(dir, 'daemon.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      node: 'bench',
      socket,
      stateDir: join(dir, 'state'),
      store: { backend: 'embedded', path: join(dir, 'cluster.db'), sync: 'normal' },
      pools: [{ name: 'bench', cidr: '100.96.0.0/16' }],
      reconcile: { intervalMs: 0 },
      log: { level: 'warn', file: join(dir, 'daemon.log') },
    }),
  );
  const daemon = await spawnDaemon({ configFile, socket, logFile: join(dir, 'daemon.out') });
  try {
    const corralConf = { cniVersion: '1.0.0', name: 'bench', type: 'corral', daemonSocket: socket };
    const refConf = { cniVersion: '1.0.0', name: 'ref', type: 'ptp', ipMasq: false, mtu: 1500, ipam: { type: 'host-local', subnet: '100.112.0.0/16', dataDir: join(dir, 'host-local') } };
    const plugins = [
      { name: 'corral', binary: shimPath(), conf: corralConf },
      { name: 'ptp+host-local', binary: '/usr/lib/cni/ptp', conf: refConf },
    ];
    const times: Record<string, { ADD: number[]; DEL: number[] }> = { corral: { ADD: [], DEL: [] }, 'ptp+host-local': { ADD: [], DEL: [] } };
    // Warm-up: first execs pay for page cache and JIT on both sides.
    for (const p of plugins) {
      const call = { containerId: 'warm', netns: namedNetnsPath('ct-cnib-c0'), ifname: 'eth0' };
      must(await execPlugin(p.binary, { command: 'ADD', ...call }, p.conf), `${p.name} warm-up ADD`);
      must(await execPlugin(p.binary, { command: 'DEL', ...call }, p.conf), `${p.name} warm-up DEL`);
    }
    for (let block = 0; block * 10 < cycles; block++) {
      for (const p of plugins) {
        for (let i = block * 10; i < Math.min(cycles, block * 10 + 10); i++) {
          const call = { containerId: `c${i}`, netns: namedNetnsPath(`ct-cnib-c${i % CONTAINERS}`), ifname: 'eth0' };
          times[p.name]!.ADD.push(must(await execPlugin(p.binary, { command: 'ADD', ...call }, p.conf), `${p.name} ADD`).ms);
          times[p.name]!.DEL.push(must(await execPlugin(p.binary, { command: 'DEL', ...call }, p.conf), `${p.name} DEL`).ms);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const rows = (['ADD', 'DEL'] as const).flatMap((op) => {
      const ours = summarize(times.corral![op]);
      const ref = summarize(times['ptp+host-local']![op]);
      const goal = op === 'ADD' ? 1.0 : 0.5;
      return [
        {
          operation: op,
          corral_median_ms: ours.median,
          corral_p99_ms: ours.p99,
          ref_median_ms: ref.median,
          ref_p99_ms: ref.p99,
          ratio: ours.median / ref.median,
          goal: `≤ ${goal}× (brief: ${REF[op]} ms)`,
          met: ours.median / ref.median <= goal,
        },
      ];
    });
    if (json) process.stdout.write(JSON.stringify({ cycles, rows }, null, 2) + '\n');
    else {
      process.stdout.write(`CNI ADD/DEL, ${cycles} cycles each, corral vs ptp+host-local (same run, same namespaces)\n`);
      printTable(rows);
    }
  } finally {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.includes('--inside')) await inside();
else await outer();
