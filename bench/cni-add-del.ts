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
 * --tls: the Store through the master's store API instead of an embedded
 * file, over HTTPS (the CNI daemon's `tls` block: the cluster CA and its own
 * certificate) beside the same over plain HTTP (`insecure: true`): two
 * masters (`corral master`, embedded registry, sync normal, --no-auth on
 * both) and two CNI daemons in the host namespace, alternating blocks with
 * the reference as above. Goal (issue: security): the HTTPS column close to
 * the plain one; no fixed ratio is set for CNI.
 *
 * Usage: npx tsx bench/cni-add-del.ts [--cycles 100] [--tls] [--json]
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
import { startServingChild, type ServingChild } from './dns-common.js';
import { createClusterCa, issueCertificate, writeTlsFiles } from '../common/tls/index.js';

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
const TLS = args.includes('--tls');

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

interface Variant {
  name: string;
  binary: string;
  conf: Record<string, unknown>;
}

/** A CNI daemon with the given store and pool; `extra` adds config (tls, insecure, interface prefix). */
async function corralDaemon(dir: string, name: string, store: Record<string, unknown>, cidr: string, extra: Record<string, unknown> = {}): Promise<{ variant: Variant; stop(): Promise<void> }> {
  const file = name.replace(/[^a-z0-9]+/gi, '-');
  const socket = join(dir, `${file}.sock`);
  const configFile = join(dir, `${file}.yaml`);
  writeFileSync(
    configFile,
    JSON.stringify({
      node: 'bench',
      socket,
      stateDir: join(dir, `${file}-state`),
      store,
      pools: [{ name: 'bench', cidr }],
      reconcile: { intervalMs: 0 },
      log: { level: 'warn', file: join(dir, `${file}.log`) },
      ...extra,
    }),
  );
  const daemon = await spawnDaemon({ configFile, socket, logFile: join(dir, `${file}.out`) });
  return { variant: { name, binary: shimPath(), conf: { cniVersion: '1.0.0', name: 'bench', type: 'corral', daemonSocket: socket } }, stop: () => daemon.stop() };
}

/** `corral master` in this (host) namespace, its embedded registry at sync normal; `tls` flags make it HTTPS. */
function master(dir: string, name: string, tlsFlags: string[]): Promise<ServingChild> {
  const config = join(dir, `${name}.json`);
  writeFileSync(config, JSON.stringify({ store: { backend: 'embedded', path: join(dir, name, 'registry.db'), sync: 'normal' } }));
  const flags = ['--port', '0', '--work-dir', join(dir, name), '--config', config, '--log-level', 'warn', '--no-auth', ...(tlsFlags.length ? tlsFlags : ['--insecure'])];
  return startServingChild(`cni-bench-${name}`, ['cli/corral.ts', 'master', ...flags], /corral master listening on https?:\/\/[^\s]+:(\d+)/, 60_000);
}

async function inside(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'corral-cnibench-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    const variants: Variant[] = [];
    if (!TLS) {
      const d = await corralDaemon(dir, 'corral', { backend: 'embedded', path: join(dir, 'cluster.db'), sync: 'normal' }, '100.96.0.0/16');
      stops.push(d.stop);
      variants.push(d.variant);
    } else {
      // The cluster CA, the master's server certificate and the CNI daemon's own (client) certificate, as provisioning issues them.
      const ca = await createClusterCa({ commonName: 'bench cluster CA', validDays: 2 });
      const caFile = writeTlsFiles(dir, 'ca', ca).cert;
      const m = writeTlsFiles(dir, 'master', await issueCertificate(ca, { commonName: 'master', ipAddresses: ['127.0.0.1'], usage: 'server', validDays: 1 }));
      const c = writeTlsFiles(dir, 'cni', await issueCertificate(ca, { commonName: 'cni-bench', ipAddresses: ['127.0.0.1'], usage: 'both', validDays: 1 }));
      const plainMaster = await master(dir, 'master-http', []);
      stops.push(plainMaster.stop);
      const tlsMaster = await master(dir, 'master-https', ['--tls-ca', caFile, '--tls-cert', m.cert, '--tls-key', m.key]);
      stops.push(tlsMaster.stop);
      // Separate pools and host-side interface prefixes: both daemons route in the same host namespace.
      const plain = await corralDaemon(dir, 'corral store http', { backend: 'remote', url: `http://127.0.0.1:${plainMaster.port}` }, '100.96.0.0/16', { insecure: true, hostIfacePrefix: 'crp' });
      stops.push(plain.stop);
      const tls = await corralDaemon(dir, 'corral store https', { backend: 'remote', url: `https://127.0.0.1:${tlsMaster.port}` }, '100.97.0.0/16', {
        tls: { ca: caFile, cert: c.cert, key: c.key },
        hostIfacePrefix: 'crt',
      });
      stops.push(tls.stop);
      variants.push(plain.variant, tls.variant);
    }
    const refConf = { cniVersion: '1.0.0', name: 'ref', type: 'ptp', ipMasq: false, mtu: 1500, ipam: { type: 'host-local', subnet: '100.112.0.0/16', dataDir: join(dir, 'host-local') } };
    const plugins: Variant[] = [...variants, { name: 'ptp+host-local', binary: '/usr/lib/cni/ptp', conf: refConf }];
    const times: Record<string, { ADD: number[]; DEL: number[] }> = Object.fromEntries(plugins.map((p) => [p.name, { ADD: [], DEL: [] }]));
    // Warm-up: first execs pay for page cache and JIT on both sides. A daemon's first ADD also claims its
    // first block through the cluster Store; after it, ADD/DEL touch only the host's local store.
    const firstAdd: Record<string, number> = {};
    for (const p of plugins) {
      const call = { containerId: 'warm', netns: namedNetnsPath('ct-cnib-c0'), ifname: 'eth0' };
      firstAdd[p.name] = must(await execPlugin(p.binary, { command: 'ADD', ...call }, p.conf), `${p.name} warm-up ADD`).ms;
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
    const rows = TLS ? tlsRows(times) : refRows(times);
    if (json) process.stdout.write(JSON.stringify({ cycles, rows, ...(TLS ? { firstAddMs: firstAdd } : {}) }, null, 2) + '\n');
    else {
      process.stdout.write(
        TLS
          ? `CNI ADD/DEL, ${cycles} cycles each, the Store through the master's store API over HTTPS vs plain HTTP, and ptp+host-local (same run, same namespaces)\n`
          : `CNI ADD/DEL, ${cycles} cycles each, corral vs ptp+host-local (same run, same namespaces)\n`,
      );
      printTable(rows);
      if (TLS) process.stdout.write(`first ADD of each daemon (claims a block through the store; one sample): ${variants.map((v) => `${v.name} ${firstAdd[v.name]!.toFixed(1)} ms`).join(', ')}\n`);
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

type Times = Record<string, { ADD: number[]; DEL: number[] }>;

function refRows(times: Times): Array<Record<string, unknown>> {
  return (['ADD', 'DEL'] as const).map((op) => {
    const ours = summarize(times.corral![op]);
    const ref = summarize(times['ptp+host-local']![op]);
    const goal = op === 'ADD' ? 1.0 : 0.5;
    return {
      operation: op,
      corral_median_ms: ours.median,
      corral_p99_ms: ours.p99,
      ref_median_ms: ref.median,
      ref_p99_ms: ref.p99,
      ratio: ours.median / ref.median,
      goal: `≤ ${goal}× (brief: ${REF[op]} ms)`,
      met: ours.median / ref.median <= goal,
    };
  });
}

function tlsRows(times: Times): Array<Record<string, unknown>> {
  return (['ADD', 'DEL'] as const).map((op) => {
    const plain = summarize(times['corral store http']![op]);
    const tls = summarize(times['corral store https']![op]);
    const ref = summarize(times['ptp+host-local']![op]);
    return {
      operation: op,
      http_median_ms: plain.median,
      http_p99_ms: plain.p99,
      https_median_ms: tls.median,
      https_p99_ms: tls.p99,
      https_vs_http: tls.median / plain.median,
      ref_median_ms: ref.median,
      ref_p99_ms: ref.p99,
    };
  });
}

if (args.includes('--inside')) await inside();
else await outer();
