/**
 * The CNI runtime (common/cni-runtime) with its far end faked: plugins are
 * small shell scripts in a temporary directory that record the command,
 * their CNI_* environment and their stdin, and answer with a canned result
 * (or a CNI error). Checked here: configuration loading as libcni does it
 * (order, name match, single confs, broken files), chain order and
 * prevResult for every command, capability args, and the result cache.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCorralError } from '../../../contracts/errors.js';
import { CniRuntime, confFiles, loadConfDir, loadConfFile, loadNetwork, pluginConfig, ResultCache, toConfList, versionAtLeast, type NetworkConfList } from '../../../common/cni-runtime/index.js';

const dirs: string[] = [];
const tmp = (tag: string): string => {
  const d = mkdtempSync(join(tmpdir(), `corral-cnirt-${tag}-`));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Call {
  command: string;
  type: string;
  env: Record<string, string>;
  conf: Record<string, unknown>;
}

/** A fake plugin: logs "TYPE<TAB>CNI_* env as JSON<TAB>stdin" and prints `answer`; exits 1 when `fail` names the command. */
function fakePlugin(binDir: string, type: string, answer: object, fail: string[] = []): void {
  const log = join(binDir, 'calls.log');
  const failing = fail.map((c) => `[ "$CNI_COMMAND" = "${c}" ] && { echo '{"cniVersion":"1.1.0","code":11,"msg":"try again","details":"${type} is busy"}'; exit 1; }`).join('\n');
  writeFileSync(
    join(binDir, type),
    `#!/bin/sh
in=$(cat)
env=$(printf '{"CNI_COMMAND":"%s","CNI_CONTAINERID":"%s","CNI_IFNAME":"%s","CNI_NETNS":"%s","CNI_ARGS":"%s","CNI_PATH":"%s"}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$CNI_NETNS" "$CNI_ARGS" "$CNI_PATH")
printf '%s\\t%s\\t%s\\n' "${type}" "$env" "$in" >> "${log}"
${failing}
[ "$CNI_COMMAND" = "ADD" ] && echo '${JSON.stringify(answer)}'
exit 0
`,
  );
  chmodSync(join(binDir, type), 0o755);
}

function calls(binDir: string): Call[] {
  const file = join(binDir, 'calls.log');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const [type, env, ...conf] = l.split('\t');
      const e = JSON.parse(env!) as Record<string, string>;
      return { command: e.CNI_COMMAND!, type: type!, env: e, conf: JSON.parse(conf.join('\t')) as Record<string, unknown> };
    });
}

const resultOf = (n: number) => ({ cniVersion: '1.1.0', interfaces: [{ name: `if${n}` }], ips: [{ address: `100.96.0.${n}/32` }] });

function setup(o: { fail?: Record<string, string[]>; cniVersion?: string } = {}) {
  const binDir = tmp('bin');
  const cacheDir = tmp('cache');
  fakePlugin(binDir, 'one', resultOf(1), o.fail?.one);
  fakePlugin(binDir, 'two', resultOf(2), o.fail?.two);
  fakePlugin(binDir, 'three', resultOf(3), o.fail?.three);
  const list: NetworkConfList = toConfList(
    {
      cniVersion: o.cniVersion ?? '1.1.0',
      name: 'net1',
      plugins: [
        { type: 'one', mtu: 1400 },
        { type: 'two', capabilities: { portMappings: true } },
        { type: 'three', capabilities: { bandwidth: true, portMappings: false } },
      ],
    },
    'net1',
  );
  const runtime = new CniRuntime({ binDirs: ['/nonexistent-first', binDir], cacheDir });
  return { binDir, cacheDir, list, runtime };
}

const att = {
  containerId: 'ctr-1',
  ifname: 'eth0',
  netns: '/run/netns/x',
  args: [
    ['K8S_POD_NAME', 'p'],
    ['IgnoreUnknown', '1'],
  ] as Array<[string, string]>,
};

describe('configuration loading', () => {
  it('reads .conflist files first, each kind in sorted order; the first file naming the network wins', () => {
    const dir = tmp('conf');
    writeFileSync(join(dir, '50-b.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'from-50' }] }));
    writeFileSync(join(dir, '10-a.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'from-10' }] }));
    writeFileSync(join(dir, '00-single.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'from-single' }));
    writeFileSync(join(dir, '20-other.json'), JSON.stringify({ cniVersion: '0.4.0', name: 'other', type: 'bridge', bridge: 'br0' }));
    writeFileSync(join(dir, 'README.txt'), 'not a configuration');
    mkdirSync(join(dir, 'sub.conf'));
    expect(confFiles(dir).map((f) => f.slice(dir.length + 1))).toEqual(['10-a.conflist', '50-b.conflist', '00-single.conf', '20-other.json']);
    expect(loadNetwork(dir, 'n').plugins.map((p) => p.type)).toEqual(['from-10']);
    // A single-plugin conf is a list of one; name and cniVersion move to the list.
    expect(loadNetwork(dir, 'other')).toEqual({ cniVersion: '0.4.0', name: 'other', plugins: [{ type: 'bridge', bridge: 'br0' }] });
  });

  it('bad files are clear errors naming the file; they do not hide other networks', () => {
    const dir = tmp('bad');
    writeFileSync(join(dir, '10-good.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'good', plugins: [{ type: 'corral' }] }));
    writeFileSync(join(dir, '20-notjson.conflist'), '{"name": ');
    writeFileSync(join(dir, '30-empty.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'empty', plugins: [] }));
    writeFileSync(join(dir, '40-noname.conf'), JSON.stringify({ cniVersion: '1.0.0', type: 'bridge' }));
    writeFileSync(join(dir, '50-badtype.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'x', type: '../../bin/sh' }));
    writeFileSync(join(dir, '60-nolist.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'nolist', type: 'bridge' }));

    expect(() => loadConfFile(join(dir, '20-notjson.conflist'))).toThrow(/20-notjson\.conflist is not valid JSON/);
    expect(() => loadConfFile(join(dir, '30-empty.conflist'))).toThrow(/30-empty\.conflist: plugins: a configuration list needs at least one plugin/);
    expect(() => loadConfFile(join(dir, '40-noname.conf'))).toThrow(/40-noname\.conf: name:/);
    expect(() => loadConfFile(join(dir, '50-badtype.conf'))).toThrow(/a plugin type is a file name/);
    expect(() => loadConfFile(join(dir, '60-nolist.conflist'))).toThrow(/a \.conflist needs a "plugins" list/);
    expect(() => loadConfFile(join(dir, 'missing.conflist'))).toThrow(/missing\.conflist cannot be read/);
    expect(() => toConfList([1, 2], 'a network')).toThrow(/invalid a network: not a JSON object/);

    const all = loadConfDir(dir);
    expect(Object.keys(all.networks)).toEqual(['good']);
    expect(all.broken.map((b) => b.file.slice(dir.length + 1))).toEqual(['20-notjson.conflist', '30-empty.conflist', '60-nolist.conflist', '40-noname.conf', '50-badtype.conf']);
    expect(loadNetwork(dir, 'good').name).toBe('good');
    const err = (() => {
      try {
        loadNetwork(dir, 'empty');
      } catch (e) {
        return e;
      }
    })();
    expect(isCorralError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toMatch(/^unknown CNI network "empty" in .* \(known: good\); not loaded: .*30-empty\.conflist/);
    // A missing directory has no networks (as in libcni), and says so.
    expect(() => loadNetwork(join(dir, 'nope'), 'good')).toThrow(/unknown CNI network "good" in .*nope \(known: none\)$/);
  });

  it('disableCheck and disableGC accept booleans and "true"/"false" strings, as libcni does', () => {
    expect(toConfList({ name: 'n', disableCheck: 'true', disableGC: false, plugins: [{ type: 'a' }] }, 'n')).toMatchObject({ cniVersion: '0.1.0', disableCheck: true, disableGC: false });
    expect(() => toConfList({ name: 'n', disableCheck: 'yes', plugins: [{ type: 'a' }] }, 'n')).toThrow(/disableCheck/);
  });

  it('versions compare numerically', () => {
    expect(versionAtLeast('1.1.0', '1.1.0')).toBe(true);
    expect(versionAtLeast('0.10.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.3.1', '0.4.0')).toBe(false);
    expect(versionAtLeast('1.0.0', '1.1.0')).toBe(false);
  });
});

describe('plugin configuration', () => {
  it('injects name, cniVersion, prevResult and only the capability args a plugin declares', () => {
    const list = toConfList(
      {
        cniVersion: '1.0.0',
        name: 'n',
        plugins: [
          { type: 'a', name: 'ignored', runtimeConfig: { old: 1 } },
          { type: 'b', capabilities: { portMappings: true, bandwidth: false } },
        ],
      },
      'n',
    );
    const caps = { portMappings: [{ hostPort: 80 }], bandwidth: { ingressRate: 1 }, ips: ['1.2.3.4'] };
    expect(pluginConfig(list, 0, { capabilityArgs: caps })).toEqual({ type: 'a', name: 'n', cniVersion: '1.0.0', runtimeConfig: { old: 1 } });
    expect(pluginConfig(list, 1, { prevResult: { ips: [] }, capabilityArgs: caps })).toEqual({
      type: 'b',
      name: 'n',
      cniVersion: '1.0.0',
      capabilities: { portMappings: true, bandwidth: false },
      prevResult: { ips: [] },
      runtimeConfig: { portMappings: [{ hostPort: 80 }] },
    });
  });
});

describe('chains', () => {
  it('ADD runs in order, each plugin with the previous result; the final result is returned and cached', async () => {
    const { binDir, list, runtime } = setup();
    const caps = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };
    expect(await runtime.add(list, { ...att, capabilityArgs: caps })).toEqual(resultOf(3));
    const c = calls(binDir);
    expect(c.map((x) => `${x.command} ${x.type}`)).toEqual(['ADD one', 'ADD two', 'ADD three']);
    expect(c[0]!.conf.prevResult).toBeUndefined();
    expect(c[1]!.conf.prevResult).toEqual(resultOf(1));
    expect(c[2]!.conf.prevResult).toEqual(resultOf(2));
    expect(c[0]!.conf).toMatchObject({ name: 'net1', cniVersion: '1.1.0', mtu: 1400 });
    expect(c[0]!.conf.runtimeConfig).toBeUndefined();
    expect(c[1]!.conf.runtimeConfig).toEqual(caps);
    expect(c[2]!.conf.runtimeConfig).toBeUndefined(); // declares portMappings: false
    expect(c[0]!.env).toEqual({
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'ctr-1',
      CNI_IFNAME: 'eth0',
      CNI_NETNS: '/run/netns/x',
      CNI_ARGS: 'K8S_POD_NAME=p;IgnoreUnknown=1',
      CNI_PATH: `/nonexistent-first:${binDir}`,
    });
    expect(runtime.cachedResult(list, att)).toEqual(resultOf(3));
  });

  it('DEL runs in reverse with the cached result and removes the cache entry', async () => {
    const { binDir, cacheDir, list, runtime } = setup();
    await runtime.add(list, att);
    await runtime.del(list, { containerId: att.containerId, ifname: att.ifname });
    const dels = calls(binDir).filter((c) => c.command === 'DEL');
    expect(dels.map((d) => d.type)).toEqual(['three', 'two', 'one']);
    for (const d of dels) expect(d.conf.prevResult).toEqual(resultOf(3));
    expect(dels[0]!.env.CNI_NETNS).toBe(''); // DEL may go without the namespace
    expect(existsSync(join(cacheDir, 'results', 'net1-ctr-1-eth0'))).toBe(false);
    expect(runtime.cachedResult(list, att)).toBeUndefined();
  });

  it('a failing ADD stops the chain and is reported with the plugin message and a mapped code; nothing is cached', async () => {
    const { binDir, list, runtime } = setup({ fail: { two: ['ADD'] } });
    const err = await runtime.add(list, att).catch((e: unknown) => e);
    expect(isCorralError(err, 'UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toBe('CNI ADD on network net1 failed in plugin two: try again: two is busy (CNI code 11)');
    expect(calls(binDir).map((c) => `${c.command} ${c.type}`)).toEqual(['ADD one', 'ADD two']);
    expect(runtime.cachedResult(list, att)).toBeUndefined();
    // Undoing it: without a cached result only the first plugin is asked.
    await runtime.del(list, att);
    expect(
      calls(binDir)
        .filter((c) => c.command === 'DEL')
        .map((c) => c.type),
    ).toEqual(['one']);
  });

  it('a failing DEL still asks the other plugins, reports the first failure and keeps the cache for a retry', async () => {
    const { binDir, list, runtime } = setup({ fail: { two: ['DEL'] } });
    await runtime.add(list, att);
    await expect(runtime.del(list, att)).rejects.toThrow(/CNI DEL on network net1 failed in plugin two: try again/);
    expect(
      calls(binDir)
        .filter((c) => c.command === 'DEL')
        .map((c) => c.type),
    ).toEqual(['three', 'two', 'one']);
    expect(runtime.cachedResult(list, att)).toEqual(resultOf(3));
  });

  it('CHECK runs in order with the cached result; stops at the first failure; honours disableCheck and old versions', async () => {
    const { binDir, list, runtime } = setup({ fail: { two: ['CHECK'] } });
    await runtime.add(list, att);
    await expect(runtime.check(list, att)).rejects.toThrow(/CNI CHECK on network net1 failed in plugin two/);
    const checks = calls(binDir).filter((c) => c.command === 'CHECK');
    expect(checks.map((c) => c.type)).toEqual(['one', 'two']);
    expect(checks[0]!.conf.prevResult).toEqual(resultOf(3));
    await runtime.check({ ...list, disableCheck: true }, att);
    expect(calls(binDir).filter((c) => c.command === 'CHECK')).toHaveLength(2);
    await expect(runtime.check({ ...list, cniVersion: '0.3.1' }, att)).rejects.toThrow(/0\.3\.1 does not support the CHECK command/);
  });

  it('STATUS asks every plugin with no container (1.1.0 and later only)', async () => {
    const { binDir, list, runtime } = setup();
    await runtime.status(list);
    const st = calls(binDir);
    expect(st.map((c) => `${c.command} ${c.type}`)).toEqual(['STATUS one', 'STATUS two', 'STATUS three']);
    expect(st[0]!.env.CNI_CONTAINERID).toBe('');
    await runtime.status({ ...list, cniVersion: '1.0.0' });
    expect(calls(binDir)).toHaveLength(3);
  });

  it('GC deletes the stale cached attachments of the network, then sends GC with the valid attachments', async () => {
    const { binDir, list, runtime } = setup();
    await runtime.add(list, { containerId: 'keep', ifname: 'eth0' });
    await runtime.add(list, { containerId: 'stale', ifname: 'eth0' });
    const other = { ...list, name: 'net2' };
    await runtime.add(other, { containerId: 'stale', ifname: 'eth0' });
    const before = calls(binDir).length;
    const valid = [{ containerID: 'keep', ifname: 'eth0' }];
    expect(await runtime.gc(list, valid)).toEqual({ deleted: [{ containerId: 'stale', ifname: 'eth0' }] });
    const c = calls(binDir).slice(before);
    expect(c.map((x) => `${x.command} ${x.type}`)).toEqual(['DEL three', 'DEL two', 'DEL one', 'GC one', 'GC two', 'GC three']);
    expect(c[0]!.env.CNI_CONTAINERID).toBe('stale');
    expect(c[3]!.conf['cni.dev/valid-attachments']).toEqual(valid);
    expect(runtime.cachedResult(list, { containerId: 'keep', ifname: 'eth0' })).toEqual(resultOf(3));
    expect(runtime.cachedResult(other, { containerId: 'stale', ifname: 'eth0' })).toEqual(resultOf(3));
  });

  it('bad names and missing plugins are refused before anything runs', async () => {
    const { binDir, list, runtime } = setup();
    await expect(runtime.add(list, { containerId: '../etc', ifname: 'eth0' })).rejects.toThrow(/bad CNI container id "\.\.\/etc"/);
    await expect(runtime.add(list, { containerId: 'c', ifname: 'a-very-long-ifname0' })).rejects.toThrow(/bad interface name/);
    await expect(runtime.add({ ...list, plugins: [{ type: 'absent' }] }, att)).rejects.toThrow(/CNI plugin "absent" not found in \/nonexistent-first, /);
    expect(calls(binDir)).toEqual([]);
  });
});

describe('result cache', () => {
  it('writes cniCacheV1 entries where libcni does, reads them back, lists and removes them', () => {
    const dir = tmp('rc');
    const cache = new ResultCache(dir);
    const key = { network: 'n', containerId: 'c1', ifname: 'eth0' };
    expect(cache.get(key)).toBeUndefined();
    cache.put({ networkName: 'n', containerId: 'c1', ifName: 'eth0', netns: '/run/netns/c1', cniArgs: [['A', 'b']], result: { ips: [] } });
    cache.put({ networkName: 'n', containerId: 'c2', ifName: 'eth1', result: { ips: [1] } });
    const file = join(dir, 'results', 'n-c1-eth0');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      kind: 'cniCacheV1',
      networkName: 'n',
      containerId: 'c1',
      ifName: 'eth0',
      netns: '/run/netns/c1',
      cniArgs: [['A', 'b']],
      result: { ips: [] },
    });
    expect(cache.get(key)?.result).toEqual({ ips: [] });
    expect(cache.list().map((e) => e.containerId)).toEqual(['c1', 'c2']);
    expect(cache.list('c2').map((e) => e.ifName)).toEqual(['eth1']);
    cache.remove(key);
    expect(cache.get(key)).toBeUndefined();
    expect(cache.list().map((e) => e.containerId)).toEqual(['c2']);
  });

  it('a bare result (older format) is read as the result; a corrupt file is a clear error; keys cannot leave the directory', () => {
    const dir = tmp('rc2');
    const cache = new ResultCache(dir);
    mkdirSync(join(dir, 'results'));
    writeFileSync(join(dir, 'results', 'n-old-eth0'), JSON.stringify({ cniVersion: '0.4.0', ips: [] }));
    expect(cache.get({ network: 'n', containerId: 'old', ifname: 'eth0' })?.result).toEqual({ cniVersion: '0.4.0', ips: [] });
    writeFileSync(join(dir, 'results', 'n-bad-eth0'), '{');
    expect(() => cache.get({ network: 'n', containerId: 'bad', ifname: 'eth0' })).toThrow(/cached CNI result .*n-bad-eth0 is not JSON/);
    expect(cache.list()).toEqual([]); // neither is a cniCacheV1 entry
    expect(() => cache.file({ network: 'n', containerId: 'a/b', ifname: 'eth0' })).toThrow(/bad container id "a\/b"/);
    expect(() => cache.file({ network: '', containerId: 'c', ifname: 'eth0' })).toThrow(/needs a network name/);
  });

  it('an unreadable cache entry does not block DEL: it is dropped and DEL goes on without a prevResult', async () => {
    const { binDir, cacheDir, list, runtime } = setup();
    mkdirSync(join(cacheDir, 'results'), { recursive: true });
    writeFileSync(join(cacheDir, 'results', 'net1-ctr-1-eth0'), 'garbage');
    await runtime.del(list, att);
    expect(calls(binDir).map((c) => `${c.command} ${c.type}`)).toEqual(['DEL one']);
    expect(existsSync(join(cacheDir, 'results', 'net1-ctr-1-eth0'))).toBe(false);
  });
});
