/**
 * Native tasks on a CNI network through the NetworkHook and a real corral
 * CNI node daemon (running in its own "host" namespace, as in test/cni):
 * the task starts with its address already configured, is reachable from
 * the host side, and destroy's DEL frees the address. A failed ADD (unknown
 * network) fails the launch and leaves nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniNetworkHook } from '../../plugins/isolator/src/hooks/network-hook.js';
import { ping, startTestHost, type TestHost } from '../cni/helpers.js';
import { NONE, eventually, forceCleanup, leftovers, nativeEnv, removeCgroupRoot, shell, task, type NativeEnv } from './helpers.js';

let host: TestHost;
let env: NativeEnv;

beforeAll(async () => {
  host = await startTestHost('iso');
  const hook = new CniNetworkHook({ networks: { 'corral-test': host.conf({ name: 'corral-test' }) }, cacheDir: join(host.dir, 'results') });
  env = await nativeEnv('net', {}, { networkHook: hook });
});

afterAll(async () => {
  if (env) {
    for (const id of ['cni1', 'cni2', 'cni3']) await env.z.destroy(id).catch(() => undefined);
    await env.z.close();
    await removeCgroupRoot(env.cgroupRoot);
  }
  await host?.dispose();
  if (!env) return;
  const left = leftovers(env);
  await forceCleanup(env);
  expect(left).toEqual(NONE);
});

describe('CNI networking for native tasks', () => {
  it('the task starts with its CNI address, is reachable, and DEL frees the address on destroy', async () => {
    const sandbox = env.sandbox('cni1');
    const l = await env.z.launch(task('cni1', sandbox, { network: { mode: 'cni', network: 'corral-test' }, command: shell('ip -4 -o addr show; ip route; sleep 30') }));
    expect(l.ipAddresses).toHaveLength(1);
    const ip = l.ipAddresses[0]!;
    expect(ip).toMatch(/^100\.96\./);
    expect(l.netns).toBe(`/run/netns/${env.netnsPrefix}cni1`);
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8')).toContain('default via 169.254.1.1'));
    const out = readFileSync(join(sandbox, 'stdout'), 'utf8');
    expect(out).toContain(`inet ${ip}/32`); // configured before the task's first instruction
    expect(out).toMatch(/^1: lo\s+inet 127\.0\.0\.1/m);
    expect((await host.allocations()).map((a) => a.ip)).toContain(ip);
    // A second task on the network reaches the first (routed through the host side, Calico style).
    const peer = await env.z.launch(task('cni3', env.sandbox('cni3'), { network: { mode: 'cni', network: 'corral-test' }, command: shell('sleep 30') }));
    expect(peer.ipAddresses[0]).not.toBe(ip);
    expect(await ping(`${env.netnsPrefix}cni3`, ip, 1)).toContain('1 received');

    await env.z.destroy('cni1');
    await env.z.destroy('cni3');
    expect((await host.allocations()).map((a) => a.ip)).not.toContain(ip);
    expect(existsSync(l.netns!)).toBe(false);
  });

  it('an unknown network fails the launch and releases everything', async () => {
    const before = (await host.allocations()).length;
    await expect(env.z.launch(task('cni2', env.sandbox('cni2'), { network: { mode: 'cni', network: 'nope' } }))).rejects.toThrow(/unknown CNI network "nope" \(known: corral-test\)/);
    expect((await host.allocations()).length).toBe(before);
    expect(leftovers(env).netnsFiles).toEqual([]);
    expect(env.z.cgroups.exists('cni2')).toBe(false);
  });
});
