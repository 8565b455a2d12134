/**
 * The hooks' own logic, with their far ends faked: the CNI runtime runs a
 * chain of stand-in plugins (shell scripts that record what they were given)
 * — order, prevResult, capabilities, rollback of a failed ADD, DEL in
 * reverse with the cached result — and the volume hook drives an in-memory
 * volume library (create-on-first-mount, unknown drivers, errors keeping
 * their code). The real daemons are exercised in test/isolator.
 */
import { describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, isCorralError } from '../../../contracts/errors.js';
import { CniNetworkHook } from '../../../plugins/isolator/src/hooks/network-hook.js';
import { loadConfDir, pluginConfig, toConfList } from '../../../common/cni-runtime/index.js';
import { VolumeLibraryHook } from '../../../plugins/volume-driver/src/hook.js';
import type { Volumes } from '../../../plugins/volume-driver/src/index.js';
import { tempDirsRemovedAfterAll } from '../../harness/temp-dirs.js';

/** A plugin that appends "COMMAND TYPE <stdin>" to calls.log and answers with a result (or fails). */
function fakePlugin(binDir: string, type: string, result: object | 'fail'): void {
  const out = result === 'fail' ? `echo '{"cniVersion":"1.0.0","code":7,"msg":"refused","details":"by ${type}"}'; exit 1` : `echo '${JSON.stringify(result)}'`;
  writeFileSync(join(binDir, type), `#!/bin/sh\nin=$(cat)\nprintf '%s %s %s\\n' "$CNI_COMMAND" "${type}" "$in" >> "${join(binDir, 'calls.log')}"\n${out}\n`);
  chmodSync(join(binDir, type), 0o755);
}

const calls = (binDir: string) =>
  readFileSync(join(binDir, 'calls.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [command, type, ...rest] = l.split(' ');
      return { command, type, conf: JSON.parse(rest.join(' ')) as Record<string, unknown> };
    });

const RESULT = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/ns' }], ips: [{ address: '100.96.0.5/32', gateway: '169.254.1.1', interface: 0 }] };

const tempDir = tempDirsRemovedAfterAll();

function setup(secondResult: object | 'fail' = RESULT) {
  const binDir = tempDir('corral-cnibin-');
  fakePlugin(binDir, 'first', RESULT);
  fakePlugin(binDir, 'second', secondResult);
  const net = {
    cniVersion: '1.0.0',
    name: 'n1',
    plugins: [
      { type: 'first', mtu: 1400 },
      { type: 'second', capabilities: { portMappings: true } },
    ],
  };
  const hook = new CniNetworkHook({ networks: { n1: net }, binDirs: [binDir], cacheDir: join(binDir, 'cache') });
  return { binDir, hook };
}

describe('CNI network hook', () => {
  const spec = { mode: 'cni' as const, network: 'n1', portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' as const }] };

  it('runs the chain in order, passing prevResult and capabilities; returns the addresses', async () => {
    const { binDir, hook } = setup();
    expect(await hook.attach('c1', '/proc/1/ns/net', spec)).toEqual({ ipAddresses: ['100.96.0.5'] });
    const [a, b] = calls(binDir);
    expect(a).toMatchObject({ command: 'ADD', type: 'first', conf: { name: 'n1', type: 'first', mtu: 1400 } });
    expect(a!.conf.prevResult).toBeUndefined();
    expect(a!.conf.runtimeConfig).toBeUndefined();
    expect(b).toMatchObject({ command: 'ADD', type: 'second', conf: { prevResult: RESULT, runtimeConfig: { portMappings: spec.portMappings } } });
  });

  it('DEL runs in reverse with the cached result, also without the namespace', async () => {
    const { binDir, hook } = setup();
    await hook.attach('c1', '/proc/1/ns/net', spec);
    await hook.detach('c1', '/gone/netns', spec);
    const dels = calls(binDir).filter((c) => c.command === 'DEL');
    expect(dels.map((d) => d.type)).toEqual(['second', 'first']);
    expect(dels[0]!.conf.prevResult).toEqual(RESULT);
  });

  it('a result cached by an older agent (CACHE/NET-ID-IF.json) still reaches DEL as prevResult', async () => {
    const { binDir, hook } = setup();
    mkdirSync(join(binDir, 'cache'), { recursive: true });
    writeFileSync(join(binDir, 'cache', 'n1-c9-eth0.json'), JSON.stringify(RESULT));
    await hook.detach('c9', undefined, spec);
    const dels = calls(binDir).filter((c) => c.command === 'DEL');
    expect(dels.map((d) => d.type)).toEqual(['second', 'first']);
    expect(dels[1]!.conf.prevResult).toEqual(RESULT);
    expect(existsSync(join(binDir, 'cache', 'n1-c9-eth0.json'))).toBe(false);
  });

  it('a failed ADD is rolled back and reported with the plugin message', async () => {
    const { binDir, hook } = setup('fail');
    const err = await hook.attach('c1', '/proc/1/ns/net', spec).catch((e: unknown) => e);
    expect(isCorralError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toBe('CNI ADD on network n1 failed in plugin second: refused: by second (CNI code 7)');
    expect(calls(binDir).map((c) => `${c.command} ${c.type}`)).toEqual(['ADD first', 'ADD second', 'DEL first']);
  });

  it('unknown networks and plugins are clear errors', async () => {
    const { hook } = setup();
    await expect(hook.attach('c1', '/ns', { mode: 'cni', network: 'n2' })).rejects.toThrow(/unknown CNI network "n2" \(known: n1\)/);
    const lonely = new CniNetworkHook({ networks: { n: { cniVersion: '1.0.0', name: 'n', type: 'missing' } }, binDirs: ['/nonexistent'] });
    await expect(lonely.attach('c1', '/ns', { mode: 'cni', network: 'n' })).rejects.toThrow(/CNI plugin "missing" not found/);
  });

  it('reads conflists and single confs from a directory, skipping broken files', () => {
    const dir = tempDir('corral-cniconf-');
    writeFileSync(join(dir, '10-a.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'a', plugins: [{ type: 'corral' }] }));
    writeFileSync(join(dir, '20-b.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'b', type: 'bridge', bridge: 'br0' }));
    writeFileSync(join(dir, '30-broken.conf'), '{');
    mkdirSync(join(dir, 'sub'));
    const { networks: all, broken } = loadConfDir(dir);
    expect(Object.keys(all).sort()).toEqual(['a', 'b']);
    expect(broken.map((b) => b.file)).toEqual([join(dir, '30-broken.conf')]);
    expect(all.b).toEqual({ cniVersion: '0.4.0', name: 'b', plugins: [{ type: 'bridge', bridge: 'br0' }] });
    expect(pluginConfig(toConfList(all.b, 'b'), 0)).toEqual({ cniVersion: '0.4.0', name: 'b', type: 'bridge', bridge: 'br0' });
  });
});

/** An in-memory volume library: just enough of the contract for the hook. */
function fakeVolumes(existing: string[] = [], fail?: CorralError): Volumes & { created: Array<[string, unknown]>; refs: Map<string, string[]> } {
  const names = new Set(existing);
  const refs = new Map<string, string[]>();
  const created: Array<[string, unknown]> = [];
  return {
    created,
    refs,
    async create(name: string, opts?: Record<string, string> | null) {
      created.push([name, opts]);
      names.add(name);
      return { name } as never;
    },
    async mount(name: string, id: string) {
      if (fail) throw fail;
      if (!names.has(name)) throw new CorralError('NOT_FOUND', `volume ${name} not found`);
      refs.set(name, [...(refs.get(name) ?? []), id]);
      return `/mnt/${name}`;
    },
    async unmount(name: string, id: string) {
      refs.set(
        name,
        (refs.get(name) ?? []).filter((r) => r !== id),
      );
    },
  } as unknown as Volumes & { created: Array<[string, unknown]>; refs: Map<string, string[]> };
}

describe('volume hook', () => {
  const src = (name: string, options: Record<string, string> = {}) => ({ type: 'external' as const, driver: 'corral', name, options });

  it('mounts by reference and creates a missing volume with the task options first', async () => {
    const lib = fakeVolumes(['have']);
    const hook = new VolumeLibraryHook({ drivers: { corral: lib } });
    expect(await hook.mount(src('have'), 'r1')).toBe('/mnt/have');
    expect(lib.created).toEqual([]);
    expect(await hook.mount(src('new', { size: '1G' }), 'r2')).toBe('/mnt/new');
    expect(lib.created).toEqual([['new', { size: '1G' }]]);
    await hook.unmount(src('have'), 'r1');
    expect(lib.refs.get('have')).toEqual([]);
  });

  it('without createMissing a missing volume is an error', async () => {
    const hook = new VolumeLibraryHook({ drivers: { corral: fakeVolumes() }, createMissing: false });
    const err = await hook.mount(src('none'), 'r').catch((e: unknown) => e);
    expect(isCorralError(err, 'NOT_FOUND')).toBe(true);
    expect((err as Error).message).toBe('volume none (driver corral): mount failed: volume none not found');
  });

  it('a CONFLICT (attached on another live host) keeps its code and message', async () => {
    const hook = new VolumeLibraryHook({ drivers: { corral: fakeVolumes(['pg'], new CorralError('CONFLICT', 'volume pg is attached on host h2, which is alive; unmount it there first')) } });
    const err = await hook.mount(src('pg'), 'r').catch((e: unknown) => e);
    expect(isCorralError(err, 'CONFLICT')).toBe(true);
    expect((err as Error).message).toMatch(/attached on host h2, which is alive/);
  });

  it('an unmount the driver did not answer is asked again; a refusal is not', async () => {
    const lib = fakeVolumes(['pg']);
    const hook = new VolumeLibraryHook({ drivers: { corral: lib }, unmountRetryMs: [1, 1] });
    await hook.mount(src('pg'), 'r1');
    const real = lib.unmount.bind(lib);
    let calls = 0;
    lib.unmount = async (name: string, id: string) => {
      if (++calls === 1) throw new CorralError('UNAVAILABLE', 'cannot reach the volume driver: connect ECONNREFUSED');
      return real(name, id);
    };
    await hook.unmount(src('pg'), 'r1');
    expect(calls).toBe(2);
    expect(lib.refs.get('pg')).toEqual([]);
    calls = 0;
    lib.unmount = async () => {
      calls++;
      throw new CorralError('INTERNAL', 'umount: target is busy');
    };
    await expect(hook.unmount(src('pg'), 'r1')).rejects.toThrow('volume pg (driver corral): unmount failed: umount: target is busy');
    expect(calls).toBe(1);
    lib.unmount = async () => {
      calls++;
      throw new CorralError('TIMEOUT', 'volume driver did not answer');
    };
    calls = 0;
    await expect(hook.unmount(src('pg'), 'r1')).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(calls).toBe(3);
  });

  it('an unknown driver names the known ones', async () => {
    const hook = new VolumeLibraryHook({ drivers: { corral: fakeVolumes() } });
    await expect(hook.mount({ ...src('x'), driver: 'rexray' }, 'r')).rejects.toThrow('unknown volume driver "rexray" for volume x (this agent knows: corral)');
  });
});
