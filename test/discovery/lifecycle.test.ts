/**
 * Task lifecycle through the scheduler and simulated agents: a name appears
 * when its task runs, follows health, disappears when the task ends; the
 * daemon keeps serving the last state while the master is away, says so in
 * its metrics, and resynchronises when the master is back.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { startCluster, type TestCluster } from './cluster.js';
import { addresses, waitForAnswer } from './dns-client.js';

let c: TestCluster | undefined;
afterEach(async () => {
  await c?.dispose();
  c = undefined;
});

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').at(-1)) : NaN;
}

describe('task lifecycle', () => {
  it('appears on RUNNING, hides while unhealthy, disappears when the task ends or is killed', async () => {
    c = await startCluster();
    const port = c.discovery.dnsPort;
    expect(await addresses(port, 'db.marathon.corral')).toEqual([]);
    await c.launch({ id: 'db-1', name: 'db' });
    await c.launch({ id: 'db-2', name: 'db' });
    const both = [c.ipOf('db-1'), c.ipOf('db-2')].sort();
    expect(await waitForAnswer(port, 'db.marathon.corral', (ips) => ips.length === 2, 1000)).toEqual(both);
    expect(await waitForAnswer(port, 'db.service.corral', (ips) => ips.length === 2, 1000)).toEqual(both);

    c.agentOf('db-1').setHealth(c.frameworkId, 'db-1', false);
    expect(await waitForAnswer(port, 'db.marathon.corral', (ips) => ips.length === 1, 1000)).toEqual([c.ipOf('db-2')]);
    expect(await waitForAnswer(port, 'db.service.corral', (ips) => ips.length === 1, 1000)).toEqual([c.ipOf('db-2')]);
    c.agentOf('db-1').setHealth(c.frameworkId, 'db-1', true);
    await waitForAnswer(port, 'db.marathon.corral', (ips) => ips.length === 2, 1000);

    c.agentOf('db-2').end(c.frameworkId, 'db-2', 'TASK_FAILED');
    expect(await waitForAnswer(port, 'db.marathon.corral', (ips) => ips.length === 1, 1000)).toEqual([c.ipOf('db-1')]);
    await c.framework.kill('db-1');
    await waitForAnswer(port, 'db.marathon.corral', (ips) => ips.length === 0, 1000);
    await waitForAnswer(port, 'db.service.corral', (ips) => ips.length === 0, 1000);
    const records = (await (await fetch(`${c.discovery.httpUrl}/v1/corral/dns/records`)).json()) as Array<{ name: string }>;
    expect(records.some((r) => r.name.startsWith('db'))).toBe(false);
  });

  it('a task that moves to another agent follows there (relaunch under a new IP)', async () => {
    c = await startCluster({ agents: 2 });
    const port = c.discovery.dnsPort;
    await c.launch({ id: 'cache-a', name: 'cache' });
    await waitForAnswer(port, 'cache.marathon.corral', (ips) => ips.length === 1, 1000);
    c.agentOf('cache-a').end(c.frameworkId, 'cache-a', 'TASK_LOST');
    await c.launch({ id: 'cache-b', name: 'cache' });
    expect(await waitForAnswer(port, 'cache.marathon.corral', (ips) => ips.length === 1 && ips[0] === c!.ipOf('cache-b'), 1000)).toEqual([c.ipOf('cache-b')]);
  });

  it('gives each instance of an app a stable name of its own, which follows it to its replacement', async () => {
    c = await startCluster({ agents: 2 });
    const port = c.discovery.dnsPort;
    const instance = (i: number) => ({ labels: { labels: [{ key: 'corral.instance', value: String(i) }] } });
    await c.launch({ id: 'kv.0.a', name: 'kv', ...instance(0) });
    await c.launch({ id: 'kv.1.a', name: 'kv', ...instance(1) });
    expect(await waitForAnswer(port, 'kv-0.kv.marathon.corral', (ips) => ips.length === 1, 1000)).toEqual([c.ipOf('kv.0.a')]);
    expect(await waitForAnswer(port, 'kv-1.kv.marathon.corral', (ips) => ips.length === 1, 1000)).toEqual([c.ipOf('kv.1.a')]);
    expect(await waitForAnswer(port, 'kv.marathon.corral', (ips) => ips.length === 2, 1000)).toEqual([c.ipOf('kv.0.a'), c.ipOf('kv.1.a')].sort());
    // Instance 1 is lost and replaced: its name answers the replacement only; instance 0's name is untouched.
    c.agentOf('kv.1.a').end(c.frameworkId, 'kv.1.a', 'TASK_LOST');
    await waitForAnswer(port, 'kv-1.kv.marathon.corral', (ips) => ips.length === 0, 1000);
    await c.launch({ id: 'kv.1.b', name: 'kv', ...instance(1) });
    expect(await waitForAnswer(port, 'kv-1.kv.marathon.corral', (ips) => ips.length === 1, 1000)).toEqual([c.ipOf('kv.1.b')]);
    expect(await addresses(port, 'kv-0.kv.marathon.corral')).toEqual([c.ipOf('kv.0.a')]);
  });

  it('keeps serving the last known state while the master is down, says so in metrics, and resyncs', async () => {
    c = await startCluster({ discovery: { master: { initialBackoffMs: 50, maxBackoffMs: 200 } } });
    const port = c.discovery.dnsPort;
    const url = c.discovery.httpUrl;
    await c.launch({ id: 'keep-1', name: 'keep' });
    await waitForAnswer(port, 'keep.marathon.corral', (ips) => ips.length === 1, 1000);
    expect(await metric(url, 'corral_discovery_master_connected')).toBe(1);
    expect(await metric(url, 'corral_discovery_state_stale_seconds')).toBe(0);

    // Stop the master (its registry survives in the work dir) and restart it on the same port.
    const restarted = c.master.restart();
    const down = Date.now();
    let sawDisconnected = false;
    while (Date.now() - down < 3000 && !sawDisconnected) {
      sawDisconnected = (await metric(url, 'corral_discovery_master_connected')) === 0;
      if (!sawDisconnected) await new Promise((r) => setTimeout(r, 5));
    }
    expect(await addresses(port, 'keep.marathon.corral')).toEqual([c.ipOf('keep-1')]);
    const master = await restarted;
    c.master = master;
    if (sawDisconnected) expect(await metric(url, 'corral_discovery_state_stale_seconds')).toBeGreaterThanOrEqual(0);
    // The agent re-registers with its task; discovery resubscribes and still answers.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await metric(url, 'corral_discovery_master_connected')) !== 1) await new Promise((r) => setTimeout(r, 50));
    expect(await metric(url, 'corral_discovery_master_connected')).toBe(1);
    expect(await metric(url, 'corral_discovery_master_reconnects')).toBeGreaterThanOrEqual(1);
    expect(await waitForAnswer(port, 'keep.marathon.corral', (ips) => ips.length === 1, 10_000)).toEqual([c.ipOf('keep-1')]);
    const status = (await (await fetch(`${url}/v1/corral/status`)).json()) as { master: { connected: boolean; reconnects: number } };
    expect(status.master.connected).toBe(true);
  });

  it('reports staleness when the master stays unreachable', async () => {
    c = await startCluster({ discovery: { master: { initialBackoffMs: 50, maxBackoffMs: 100 } } });
    await c.launch({ id: 'solo-1', name: 'solo' });
    await waitForAnswer(c.discovery.dnsPort, 'solo.marathon.corral', (ips) => ips.length === 1, 1000);
    await c.master.dispose();
    await new Promise((r) => setTimeout(r, 1200));
    const url = c.discovery.httpUrl;
    expect(await metric(url, 'corral_discovery_master_connected')).toBe(0);
    expect(await metric(url, 'corral_discovery_state_stale_seconds')).toBeGreaterThanOrEqual(1);
    expect(await addresses(c.discovery.dnsPort, 'solo.marathon.corral')).toEqual([c.ipOf('solo-1')]);
    // dispose() below stops the master again: harmless.
  });
});
